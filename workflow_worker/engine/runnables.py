"""The registry as the executor calls it: every workflow as `await fn(payload, ctx)`.

An `async def` workflow is called as it is, so it costs nothing more than before. A plain `def`
workflow is wrapped once, at start-up, to run in the worker's thread pool (engine/threads.py),
never on the event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from workflow_worker.engine.threads import Threads
from workflow_worker.workflows.context import JobContext
from workflow_worker.workflows.registry import is_sync

__all__ = ["Runnable", "runnables"]

Runnable = Callable[[dict[str, Any], JobContext], Awaitable[Any]]


def runnables(registry: Mapping[str, Callable[..., Any]], threads: Threads) -> dict[str, Runnable]:
    """Name to awaitable callable for every workflow of `registry`."""
    return {
        name: _in_thread(func, threads) if is_sync(func) else func
        for name, func in registry.items()
    }


def _in_thread(func: Callable[..., Any], threads: Threads) -> Runnable:
    @functools.wraps(func)
    async def run(payload: dict[str, Any], ctx: JobContext) -> Any:
        return await threads.call(func, payload, ctx)

    return run
