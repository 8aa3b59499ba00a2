"""Helpers for an application's own tests of its workflows.

`run_workflow` runs one workflow in-process, eagerly (no queue, no Redis needed), with a real
`JobContext`: an `async def` workflow on the caller's loop, a plain `def` one in a thread, as a
worker would; `ctx.state` from a lifespan or a value you give; progress reports kept in memory.

    run = await run_workflow(resize, {"url": "..."}, lifespan=app.lifespan)
    assert run.result == {...}
    assert run.progress[-1] == (1.0, "done")

For a worker and a client on a real embedded server, enable the pytest plugin
(`pytest_plugins = ["workflow_worker.testing.pytest_plugin"]`); see docs/testing.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from workflow_worker.engine import threads
from workflow_worker.engine.job import new_job_id
from workflow_worker.workflows.context import JobContext
from workflow_worker.workflows.lifespan import Lifespan
from workflow_worker.workflows.registry import is_sync

__all__ = ["EagerRun", "run_workflow", "run_workflow_sync"]

_UNSET: Any = object()


@dataclass(slots=True)
class EagerRun:
    """One eager run: what the workflow returned, its context, and each progress report as
    (fraction, message), in order."""

    result: Any
    ctx: JobContext
    progress: list[tuple[float, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Recorder:
    reports: list[tuple[float, str]]

    def report_progress(self, fraction: float, message: str) -> None:
        self.reports.append((fraction, message))


async def run_workflow(
    workflow: Callable[..., Any],
    payload: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    lifespan: Lifespan | None = None,
    state: Any = _UNSET,
    attempt: int = 1,
    max_attempts: int = 1,
    job_id: str | None = None,
    queue: str = "workflow:queue",
    redis: Any = None,
) -> EagerRun:
    """Run `workflow(payload, ctx)` now, in this process, and return its `EagerRun`; the
    workflow's exception, if it raises, propagates as it is.

    `lifespan` (the factory WORKER_LIFESPAN names) is entered around the run and what it yields
    is `ctx.state`; or give `state` directly. `redis` becomes `ctx.redis` (None by default);
    `ctx.http` is a real `aiohttp.ClientSession`, closed afterwards.
    """
    sync = is_sync(workflow)  # TypeError for what a worker would refuse at start-up
    reports: list[tuple[float, str]] = []
    label = name or str(getattr(workflow, "__name__", "workflow"))
    async with contextlib.AsyncExitStack() as stack:
        if state is _UNSET:
            state = await stack.enter_async_context(lifespan()) if lifespan else None
        http = await stack.enter_async_context(aiohttp.ClientSession())
        job = job_id or new_job_id()
        extra = {"job_id": job, "workflow": label, "attempt": attempt}
        ctx = JobContext(
            job_id=job,
            workflow=label,
            attempt=attempt,
            max_attempts=max_attempts,
            queue=queue,
            logger=logging.LoggerAdapter(logging.getLogger("workflow_worker.workflow"), extra),
            http=http,
            redis=redis,
            state=state,
            handle=_Recorder(reports),
        )
        body = dict(payload or {})
        if sync:
            result = await threads.call(workflow, body, ctx)
        else:
            result = await workflow(body, ctx)
    return EagerRun(result, ctx, reports)


def run_workflow_sync(
    workflow: Callable[..., Any], payload: Mapping[str, Any] | None = None, **options: Any
) -> EagerRun:
    """`run_workflow` for a test that is not async (it runs its own event loop)."""
    return asyncio.run(run_workflow(workflow, payload, **options))
