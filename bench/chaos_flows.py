"""Workflows for the chaos and soak runs (`WORKER_WORKFLOWS=bench.chaos_flows:WORKFLOWS`).

`chaos` records every execution of a job in Redis (`chaos:exec:<job id>`, one JSON event per
line: start, then end or cancel) so that the driver can count re-runs, completions that happened
twice and executions that overlapped in time, and attribute each one to the fault that caused it.
A record write that meets a Redis outage is retried until it lands: the records must be complete
for the accounting to be exact.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

from redis.exceptions import RedisError

from workflow_worker.builtin import WORKFLOWS as BUILTIN
from workflow_worker.workflows.context import JobContext, WorkflowRegistry

__all__ = ["RECORD_PREFIX", "WORKFLOWS"]

RECORD_PREFIX = "chaos:exec:"
RECORD_DEADLINE = 60.0


async def _record(redis: Any, job_id: str, event: dict[str, Any]) -> None:
    line = json.dumps(event, separators=(",", ":"))
    deadline = time.monotonic() + RECORD_DEADLINE
    while True:
        try:
            await redis.rpush(RECORD_PREFIX + job_id, line)
            return
        except (RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def chaos(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleep `seconds`, recording start and end (or cancel) with this process's pid."""
    seconds = float(payload.get("seconds", 0.2))
    base = {"run": uuid.uuid4().hex[:12], "pid": os.getpid(), "attempt": ctx.attempt}
    await _record(ctx.redis, ctx.job_id, {**base, "ev": "start", "t": time.time()})
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        # Drain deadline or lost lease: say so, then let the cancellation go on.
        await asyncio.shield(
            _record(ctx.redis, ctx.job_id, {**base, "ev": "cancel", "t": time.time()})
        )
        raise
    await _record(ctx.redis, ctx.job_id, {**base, "ev": "end", "t": time.time()})
    return {"slept": seconds}


async def churn(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Soak work: sleep, build and drop some data, touch Redis, sometimes fail (to retry)."""
    await asyncio.sleep(float(payload.get("seconds", 0.05)))
    blob = "x" * int(payload.get("bytes", 2048))
    await ctx.redis.set(f"chaos:churn:{ctx.job_id}", blob, ex=30)
    if payload.get("fail"):
        raise RuntimeError("churn failed on purpose")
    return {"bytes": len(blob)}


WORKFLOWS: WorkflowRegistry = {**BUILTIN, "chaos": chaos, "churn": churn}
