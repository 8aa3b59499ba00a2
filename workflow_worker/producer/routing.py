"""Routing by declared queue: where a client sends each job, and where it looks for a job id.

A client given `workflows=` (a `Workflows` registry) sends a job of a workflow declared with
`@workflows.workflow(queue="high")` to `high`, and any other job to its own queue. A batch
spanning queues becomes one atomic call per queue (a job's status record, unique key and list
live in its queue's hash slot, see docs/contract.md), so atomicity is per queue.

Lookups by job id read the client's own queue first (the one round trip a client without
`workflows=` makes), and only when the job is not there, the other declared queues in a single
pipelined round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.requests import JobSpec

__all__ = ["DeclaredQueues", "Routes", "first_found", "warn_unconsumed"]

log = logging.getLogger("workflow_worker")


class DeclaredQueues(Protocol):
    """What routing needs of a registry (`Workflows` has it): workflow name -> declared queue."""

    @property
    def queues(self) -> Mapping[str, str]: ...


class Routes:
    """The queues one client sends to and looks in: its own, and the registry's declared ones."""

    def __init__(self, own: QueueKeys, declared: Mapping[str, str]) -> None:
        self.own = own
        self.declared = dict(declared)
        self._keys = {own.queue: own}
        for queue in self.declared.values():
            self._keys.setdefault(queue, QueueKeys.for_queue(queue))
        # In declaration order, so a lookup's answer never depends on set ordering.
        self.others: tuple[QueueKeys, ...] = tuple(
            keys for name, keys in self._keys.items() if name != own.queue
        )

    @classmethod
    def of(cls, workflows: DeclaredQueues | None, own: QueueKeys) -> Routes | None:
        """The routes of a client given `workflows`; None without a registry or when no
        workflow declares a queue (the client then costs what a plain one does)."""
        if workflows is None:
            return None
        declared = getattr(workflows, "queues", None)
        if declared is None and isinstance(workflows, Mapping):
            return None  # a plain mapping of name to function declares no queue
        if not isinstance(declared, Mapping):
            raise TypeError(
                f"workflows= takes a Workflows registry (with declared queues): {workflows!r}"
            )
        return cls(own, declared) if declared else None

    def keys_for(self, workflow: str) -> QueueKeys:
        """The keys of the queue a job of `workflow` goes to."""
        queue = self.declared.get(workflow)
        return self.own if queue is None else self._keys[queue]

    def split(self, specs: Sequence[JobSpec]) -> list[tuple[QueueKeys, list[int]]]:
        """The batch as (queue, positions in `specs`) per queue, queues in first-use order."""
        groups: dict[str, tuple[QueueKeys, list[int]]] = {}
        for position, spec in enumerate(specs):
            keys = self.keys_for(spec.workflow)
            groups.setdefault(keys.queue, (keys, []))[1].append(position)
        return list(groups.values())


def first_found(others: Sequence[QueueKeys], answers: Iterable[Any]) -> QueueKeys | None:
    """The first queue of `others` whose pipelined answer shows the job (a non-empty hash, or
    a state field that is set)."""
    for keys, answer in zip(others, answers, strict=True):
        if isinstance(answer, list):
            answer = answer[0]
        if answer:
            return keys
    return None


def warn_unconsumed(workflows: object, consumed: Sequence[str]) -> None:
    """Log one WARNING per workflow that declares a queue this worker does not consume: its
    jobs wait there for another deployment (or forever, if none consumes it)."""
    declared = getattr(workflows, "queues", None)
    if not isinstance(declared, Mapping):
        return
    for name, queue in declared.items():
        if queue not in consumed:
            log.warning(
                "workflow %r declares queue %r, which this worker does not consume "
                "(WORKER_QUEUES is %s): its jobs wait there for a worker that does",
                name,
                queue,
                ",".join(consumed),
                extra={"workflow": name, "queue": queue},
            )
