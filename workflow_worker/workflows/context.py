"""What a workflow receives besides its payload."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from workflow_worker.engine.progress import DONE
from workflow_worker.engine.progress import check as check_progress
from workflow_worker.producer.compose import Chain
from workflow_worker.producer.requests import JobSpec
from workflow_worker.workflows import compose

__all__ = ["JobContext", "ProgressHandle", "Workflow", "WorkflowRegistry"]


@dataclass(frozen=True, slots=True)
class JobContext:
    """Per-attempt context: ids, a logger bound to the job, shared clients (`http`, an aiohttp
    session; `redis`, the worker's async Redis client), `state` (what WORKER_LIFESPAN
    yielded), and `progress()`. `handle` is where progress goes (set by the worker)."""

    job_id: str
    workflow: str
    attempt: int
    max_attempts: int
    queue: str
    logger: logging.LoggerAdapter[logging.Logger]
    http: aiohttp.ClientSession
    redis: Any
    # What WORKER_LIFESPAN yielded (None without one): the process's shared resources.
    state: Any = None
    # Where `progress()` reports go: the worker's record of this attempt (or a test's). In a
    # worker it is the attempt's bookkeeping (engine/execution.py Running), which also carries
    # the step machinery ctx.step and ctx.sleep use.
    handle: ProgressHandle | None = field(default=None, repr=False, compare=False)

    # Composition (docs/composition.md): the worker's per-queue composer, replaced by this
    # attempt's own scope (which counts what the attempt creates) on first use, so a job that
    # creates nothing pays for one field.
    composer: compose.Composer | compose.Scope | None = None

    async def step(self, name_or_fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A durable step: `await ctx.step("name", fn, *args, **kwargs)` (or `ctx.step(fn, ...)`,
        named after the function). Returns the step's recorded result if this job recorded it
        on an earlier attempt; else runs `fn` (a sync one in a thread), records its JSON result
        before going on, and returns it. See docs/steps.md."""
        running = self._attempt("ctx.step")
        return await running.engine.step(running, name_or_fn, args, kwargs)

    async def sleep(self, seconds: float, name: str = "sleep") -> None:
        """A durable sleep: the job waits in the delayed set, holding no slot, and resumes
        after its recorded steps; a resumed attempt does not sleep again. See docs/steps.md."""
        running = self._attempt("ctx.sleep")
        await running.engine.sleep(running, seconds, name)

    def _attempt(self, call: str) -> Any:
        """The worker's bookkeeping of this attempt, which steps need."""
        running: Any = self.handle
        if getattr(running, "engine", None) is None:
            raise RuntimeError(f"{call} needs a worker: this context was not made by one")
        return running

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

    def progress(self, fraction: float, message: str = "") -> Awaitable[None]:
        """Report how far the job is, `fraction` from 0 to 1 and a short message, into its
        status record (`progress`, `progress_message`). Writes are coalesced: at most a few a
        second per job, the latest value wins, the final record keeps the last one. Awaiting
        is optional (a sync workflow calls it without `await`)."""
        fraction, message = check_progress(fraction, message)
        if self.handle is not None:
            self.handle.report_progress(fraction, message)
        return DONE


class ProgressHandle(Protocol):
    """Takes a job's progress reports."""

    def report_progress(self, fraction: float, message: str) -> None: ...


class Workflow(Protocol):
    """An async function taking the job's payload and its context."""

    def __call__(self, payload: dict[str, Any], ctx: JobContext) -> Awaitable[Any]: ...


# An `async def` or a plain `def` (run in the worker's thread pool) per workflow name.
WorkflowRegistry = Mapping[str, Callable[[dict[str, Any], JobContext], Any]]
