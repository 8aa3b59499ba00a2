"""Workflows for subprocess tests (`WORKER_WORKFLOWS=tests.flows:WORKFLOWS`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

from workflow_worker.builtin import WORKFLOWS as BUILTIN
from workflow_worker.workflows.context import JobContext, WorkflowRegistry


async def crash(payload: dict[str, Any], ctx: JobContext) -> None:
    """Kill the worker process running it, as an out-of-memory kill would."""
    os.kill(os.getpid(), signal.SIGKILL)


async def _mark(ctx: JobContext, payload: dict[str, Any], event: str) -> None:
    """One line per execution event in `rec:<tag>`, stamped with the server's clock."""
    secs, micros = await ctx.redis.time()
    line = json.dumps(
        {
            "job": ctx.job_id,
            "attempt": ctx.attempt,
            "pid": os.getpid(),
            "ev": event,
            "t": secs + micros / 1e6,
        }
    )
    await ctx.redis.rpush(f"rec:{payload.get('tag', 'all')}", line)


async def record(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Record the run (server time), optionally sleep, and echo the payload."""
    await _mark(ctx, payload, "start")
    await asyncio.sleep(float(payload.get("seconds", 0)))
    await _mark(ctx, payload, "end")
    return payload


async def block(payload: dict[str, Any], ctx: JobContext) -> str:
    """Hold the event loop (a blocking call in async code, by accident), then finish."""
    await _mark(ctx, payload, "start")
    time.sleep(float(payload["seconds"]))  # noqa: ASYNC251 - blocking on purpose
    await _mark(ctx, payload, "end")
    return "done"


async def fail_once(payload: dict[str, Any], ctx: JobContext) -> str:
    """Fail on the first attempt, succeed on the next."""
    await _mark(ctx, payload, "start")
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails on purpose")
    return "ok"


async def crash_once(payload: dict[str, Any], ctx: JobContext) -> str:
    """Kill the worker the first time any job of this `tag` runs; succeed afterwards."""
    if await ctx.redis.set(f"crashed:{payload['tag']}", 1, nx=True):
        os.kill(os.getpid(), signal.SIGKILL)
    await _mark(ctx, payload, "end")
    return "ok"


WORKFLOWS: WorkflowRegistry = {
    **BUILTIN,
    "crash": crash,
    "record": record,
    "block": block,
    "fail_once": fail_once,
    "crash_once": crash_once,
}
