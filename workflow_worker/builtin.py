"""Built-in workflows, so the demo and the load test run with no application code."""

from __future__ import annotations

import asyncio
from typing import Any

from workflow_worker.workflows.context import JobContext, WorkflowRegistry

__all__ = ["WORKFLOWS"]


class WorkflowError(RuntimeError):
    """Raised by the `fail` workflow on purpose."""


async def sleep(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Wait `seconds` (default 1) and report it: a stand-in for an AI or database call."""
    seconds = float(payload.get("seconds", 1.0))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def echo(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Return the payload unchanged."""
    return payload


async def noop(payload: dict[str, Any], ctx: JobContext) -> None:
    """Do nothing: measures the queue's own cost per job."""
    return None


async def fail(payload: dict[str, Any], ctx: JobContext) -> None:
    """Raise an error, after `seconds` if given: exercises retries and the dead-letter list."""
    await asyncio.sleep(float(payload.get("seconds", 0)))
    raise WorkflowError(str(payload.get("message", "failed on purpose")))


async def http_get(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """GET `url` with the shared session; return the status and the body's length."""
    url = str(payload["url"])
    async with ctx.http.get(url) as response:
        body = await response.read()
        return {"status": response.status, "bytes": len(body)}


WORKFLOWS: WorkflowRegistry = {
    "sleep": sleep,
    "echo": echo,
    "noop": noop,
    "fail": fail,
    "http_get": http_get,
}
