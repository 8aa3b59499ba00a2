"""What a workflow receives besides its payload."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from workflow_worker.producer.compose import Chain
from workflow_worker.producer.requests import JobSpec
from workflow_worker.workflows import compose

__all__ = ["JobContext", "Workflow", "WorkflowRegistry"]


@dataclass(frozen=True, slots=True)
class JobContext:
    """Per-attempt context: ids, a logger bound to the job, and shared clients."""

    job_id: str
    workflow: str
    attempt: int
    max_attempts: int
    queue: str
    logger: logging.LoggerAdapter[logging.Logger]
    http: aiohttp.ClientSession
    redis: Any
    # Composition (docs/composition.md): the worker's per-queue composer, replaced by this
    # attempt's own scope (which counts what the attempt creates) on first use, so a job that
    # creates nothing pays for one field.
    composer: compose.Composer | compose.Scope | None = None

    async def enqueue(
        self,
        workflow: str,
        payload: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        **options: Any,
    ) -> str:
        """Enqueue a child job once, however often this workflow runs; the child's id.
        `key` names it (default: its place among this attempt's `enqueue` calls)."""
        return await compose.enqueue_child(self, workflow, payload, key, options)

    async def group(
        self, specs: Iterable[JobSpec], then: JobSpec | None = None, *, key: str | None = None
    ) -> str:
        """Run `specs` as a group, then `then` with their outcomes (once); the group's id."""
        return await compose.start_group(self, specs, then, key)

    async def chain(self, links: Sequence[JobSpec] | Chain, *, key: str | None = None) -> list[str]:
        """Run `links` one after another, each given the previous outcome; their ids."""
        return await compose.start_chain(self, links, key)


class Workflow(Protocol):
    """An async function taking the job's payload and its context."""

    def __call__(self, payload: dict[str, Any], ctx: JobContext) -> Awaitable[Any]: ...


WorkflowRegistry = Mapping[str, Callable[[dict[str, Any], JobContext], Awaitable[Any]]]
