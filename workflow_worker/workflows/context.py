"""What a workflow receives besides its payload."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

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
    # The attempt's bookkeeping (engine/execution.py Running, which holds the worker's step
    # machinery), for ctx.step and ctx.sleep; None outside a worker.
    _running: Any = field(default=None, repr=False, compare=False)

    async def step(self, name_or_fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A durable step: `await ctx.step("name", fn, *args, **kwargs)` (or `ctx.step(fn, ...)`,
        named after the function). Returns the step's recorded result if this job recorded it
        on an earlier attempt; else runs `fn` (a sync one in a thread), records its JSON result
        before going on, and returns it. See docs/steps.md."""
        running = self._running
        if running is None or running.engine is None:
            raise RuntimeError("ctx.step needs a worker: this context was not made by one")
        return await running.engine.step(running, name_or_fn, args, kwargs)

    async def sleep(self, seconds: float, name: str = "sleep") -> None:
        """A durable sleep: the job waits in the delayed set, holding no slot, and resumes
        after its recorded steps; a resumed attempt does not sleep again. See docs/steps.md."""
        running = self._running
        if running is None or running.engine is None:
            raise RuntimeError("ctx.sleep needs a worker: this context was not made by one")
        await running.engine.sleep(running, seconds, name)


class Workflow(Protocol):
    """An async function taking the job's payload and its context."""

    def __call__(self, payload: dict[str, Any], ctx: JobContext) -> Awaitable[Any]: ...


WorkflowRegistry = Mapping[str, Callable[[dict[str, Any], JobContext], Awaitable[Any]]]
