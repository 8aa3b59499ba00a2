"""Request builders for composition: groups (with or without a callback) and chains.

Pure, no I/O: each builder returns the KEYS and ARGV of `group-2.lua` plus the ids it gave.
A group's members are `<group id>.<n>`; its callback (if any) has the group's id, so
`status(group_id)` shows the group's progress and `result(group_id)` waits for the callback
(or, for a group without one, for the list of the members' outcomes). A chain's links are
`<chain id>.<n>`. See docs/composition.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workflow_worker.engine.groups import GROUP_FIELD
from workflow_worker.engine.job import MAX_ID_LENGTH, Job, State, new_job_id
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.errors import PayloadTooLarge
from workflow_worker.producer.requests import JobSpec, ScriptCall
from workflow_worker.settings import Settings

__all__ = [
    "MAX_CHAIN_LENGTH",
    "MAX_GROUP_SIZE",
    "PREVIOUS_KEY",
    "RESULTS_KEY",
    "WAITING",
    "Chain",
    "Composed",
    "chain_call",
    "derived_id",
    "group_call",
]

# The payload key under which a group's callback gets its members' outcomes, in order.
RESULTS_KEY = "results"
# The payload key under which a chain link gets the outcome of the link before it.
PREVIOUS_KEY = "previous"
# The state of a group's record (and of a chain link's) until it is enqueued or ends.
WAITING = "waiting"
MAX_GROUP_SIZE = 10_000
MAX_CHAIN_LENGTH = 100
# Stands in the callback's payload where the script splices the results; control characters
# are always escaped by JSON, so the encoded marker cannot be confused with ordinary text.
_MARKER = "\x00workflow-worker:results\x00"
_ENCODED_MARKER = json.dumps(_MARKER)


@dataclass(frozen=True, slots=True)
class Chain:
    """Jobs run one after another, each given the previous one's outcome (`a | b | c`)."""

    links: tuple[JobSpec, ...]

    def __or__(self, other: JobSpec | Chain) -> Chain:
        more = other.links if isinstance(other, Chain) else (other,)
        return Chain(self.links + more)


@dataclass(frozen=True, slots=True)
class Composed:
    """What a group or chain call names: its id and the ids of the jobs in it (the same
    whether this call created it or found it there already)."""

    id: str
    jobs: tuple[str, ...]


def derived_id(base: str, suffix: str) -> str:
    """`<base>.<suffix>`, or a digest of it when that is longer than a job id may be."""
    candidate = f"{base}.{suffix}"
    if len(candidate) <= MAX_ID_LENGTH:
        return candidate
    return hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).hexdigest()


class _Keys:
    """KEYS of one call: queue and delayed set first, then the rest by 1-based index."""

    def __init__(self, keys: QueueKeys) -> None:
        self.queue_keys = keys
        self.keys = [keys.queue, keys.delayed]

    def add(self, key: str) -> int:
        self.keys.append(key)
        return len(self.keys)


def _check_member(spec: JobSpec, what: str) -> None:
    spec.check()
    if spec.id is not None or spec.unique_key is not None:
        raise ValueError(f"a {what} names its jobs: leave id and unique_key unset")


def _encode(job: Job, settings: Settings) -> str:
    text = job.encode()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > settings.max_payload_bytes:
        raise PayloadTooLarge(
            f"job {job.id} is {size} bytes encoded, over the {settings.max_payload_bytes}-byte "
            "limit (WORKER_MAX_PAYLOAD_BYTES); store large data elsewhere and pass a reference"
        )
    return text


def _job(spec: JobSpec, job_id: str, settings: Settings, now: float, **extra: Any) -> Job:
    return Job(
        workflow=spec.workflow,
        payload=dict(spec.payload or {}),
        id=job_id,
        enqueued_at=now,
        attempt=1,
        max_attempts=spec.max_attempts or settings.max_attempts,
        timeout=spec.timeout or settings.job_timeout,
        extra=extra,
    )


def _record(job: Job, state: str, keys: QueueKeys, now: float, **more: str) -> dict[str, str]:
    record = {
        "state": state,
        "workflow": job.workflow,
        "attempt": "1",
        "max_attempts": str(job.max_attempts),
        "queue": keys.queue,
        "enqueued_at": f"{now:.6f}",
    }
    record.update(more)
    return record


def _template(job: Job, key: str, settings: Settings) -> tuple[str, str]:
    """The job's text cut where the script splices the outcomes in, under `payload[key]`.

    The text carries no `enqueued_at`: it is enqueued when its group ends, not now, and a
    creation time would make the queue's oldest-age gauge report a just-pushed callback as
    old (its record's `enqueued_at` is set when it is pushed)."""
    job.enqueued_at = None
    if key in job.payload:
        raise ValueError(f"the payload key {key!r} is reserved for the outcomes passed in")
    job.payload[key] = _MARKER
    text = _encode(job, settings)
    head, _, tail = text.partition(_ENCODED_MARKER)
    if _ENCODED_MARKER in tail:
        raise ValueError("the payload holds the reserved results marker")
    return head, tail


def _args(
    index: _Keys, guard: int, settings: Settings, groups: list[Any], jobs: list[Any]
) -> list[str | int]:
    compact = (",", ":")
    return [
        settings.result_ttl,
        guard,
        json.dumps(groups, separators=compact, ensure_ascii=False),
        json.dumps(jobs, separators=compact, ensure_ascii=False),
        index.queue_keys.events,
    ]


def group_call(
    specs: Iterable[JobSpec],
    then: JobSpec | None,
    settings: Settings,
    keys: QueueKeys,
    group_id: str | None = None,
    parent: str | None = None,
) -> tuple[ScriptCall, Composed]:
    """Arguments of `group-2.lua` for a group of `specs` and its callback `then` (if any)."""
    members = list(specs)
    if not 1 <= len(members) <= MAX_GROUP_SIZE:
        raise ValueError(f"a group has 1 to {MAX_GROUP_SIZE} jobs, not {len(members)}")
    for spec in members:
        _check_member(spec, "group")
    if then is not None:
        _check_member(then, "group's callback")
    gid = group_id or new_job_id()
    if not 1 <= len(gid) <= MAX_ID_LENGTH:
        raise ValueError(f"a group id has 1 to {MAX_ID_LENGTH} characters")
    now = time.time()
    index = _Keys(keys)
    guard = index.add(keys.job(gid))
    related = {"parent": parent} if parent else {}
    record = {
        "state": WAITING,
        "kind": "group",
        "queue": keys.queue,
        "enqueued_at": f"{now:.6f}",
        "group_total": str(len(members)),
        "group_done": "0",
        "group_failed": "0",
        **related,
    }
    join: dict[str, str] = {"total": str(len(members)), "mode": "group"}
    if then is not None:
        callback = _job(then, gid, settings, now)
        join["head"], join["tail"] = _template(callback, RESULTS_KEY, settings)
        record.update(workflow=callback.workflow, max_attempts=str(callback.max_attempts))
    jobs = []
    ids = []
    for n, spec in enumerate(members):
        job = _job(
            spec, derived_id(gid, str(n)), settings, now, **{GROUP_FIELD: {"id": gid, "index": n}}
        )
        delay = spec.delay_seconds(now)
        state = State.DELAYED if delay else State.QUEUED
        status = _record(job, state.value, keys, now, group=gid, group_index=str(n), **related)
        jobs.append(
            [_encode(job, settings), index.add(keys.job(job.id)), math.ceil(delay * 1000), status]
        )
        ids.append(job.id)
    groups = [[index.add(keys.group(gid)), guard, join, record]]
    call = ScriptCall(index.keys, _args(index, guard, settings, groups, jobs), tuple(ids))
    return call, Composed(gid, tuple(ids))


def chain_call(
    links: Sequence[JobSpec] | Chain,
    settings: Settings,
    keys: QueueKeys,
    chain_id: str | None = None,
    parent: str | None = None,
) -> tuple[ScriptCall, Composed]:
    """Arguments of `group-2.lua` for a chain: the first link is enqueued, every later one
    waits in a one-member group of the link before it (mode "chain": it runs only when that
    link succeeds, and gets its outcome under `payload["previous"]`)."""
    specs = list(links.links if isinstance(links, Chain) else links)
    if not 1 <= len(specs) <= MAX_CHAIN_LENGTH:
        raise ValueError(f"a chain has 1 to {MAX_CHAIN_LENGTH} jobs, not {len(specs)}")
    for n, spec in enumerate(specs):
        _check_member(spec, "chain")
        if n and (spec.delay is not None or spec.at is not None):
            raise ValueError("only a chain's first job may be delayed")
    cid = chain_id or new_job_id()
    ids = [derived_id(cid, str(n)) for n in range(len(specs))]
    now = time.time()
    index = _Keys(keys)
    guard = index.add(keys.job(ids[-1] if len(ids) > 1 else ids[0]))
    related = {"chain": cid, **({"parent": parent} if parent else {})}
    groups: list[Any] = []
    jobs: list[Any] = []
    for n, spec in enumerate(specs):
        extra: dict[str, Any] = {}
        if n + 1 < len(specs):
            extra[GROUP_FIELD] = {"id": ids[n + 1], "index": 0, "rest": ids[n + 2 :]}
        job = _job(spec, ids[n], settings, now, **extra)
        if n == 0:
            delay = spec.delay_seconds(now)
            state = State.DELAYED if delay else State.QUEUED
            status = _record(job, state.value, keys, now, **related)
            slot = guard if len(ids) == 1 else index.add(keys.job(job.id))
            jobs.append([_encode(job, settings), slot, math.ceil(delay * 1000), status])
            continue
        head, tail = _template(job, PREVIOUS_KEY, settings)
        join = {"total": "1", "mode": "chain", "head": head, "tail": tail}
        record = _record(job, WAITING, keys, now, kind="chain", group_total="1", **related)
        record.update(group_done="0", group_failed="0")
        slot = guard if n == len(ids) - 1 else index.add(keys.job(job.id))
        groups.append([index.add(keys.group(job.id)), slot, join, record])
    call = ScriptCall(index.keys, _args(index, guard, settings, groups, jobs), tuple(ids))
    return call, Composed(ids[-1], tuple(ids))
