"""What a workflow receives besides its payload."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
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
    # What WORKER_LIFESPAN yielded (None without one): the process's shared resources.
    state: Any = None


class Workflow(Protocol):
    """An async function taking the job's payload and its context."""

    def __call__(self, payload: dict[str, Any], ctx: JobContext) -> Awaitable[Any]: ...


# An `async def` or a plain `def` (run in the worker's thread pool) per workflow name.
WorkflowRegistry = Mapping[str, Callable[[dict[str, Any], JobContext], Any]]
