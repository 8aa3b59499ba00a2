"""Workflows for the fault harness and the soak run
(`WORKER_WORKFLOWS=bench.faults.flows:WORKFLOWS`).

`step` records every execution of a job in Redis (`faults:exec:<job id>`, one JSON event per
line: start, then end or cancel), stamped with the server's clock so that workers whose own
clocks are skewed still tell one story. The checker counts re-runs, completions that happened
twice and executions that overlapped, and attributes each one to the fault that caused it. A
record write that meets an outage is retried until it lands: the records must be complete for
the accounting to be exact.
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

__all__ = ["FANOUT_PREFIX", "GROUP_PREFIX", "RECORD_PREFIX", "WORKFLOWS"]

RECORD_PREFIX = "faults:exec:"
GROUP_PREFIX = "faults:group:"
# What each run of a fan-out's callback was given (`gather`), one JSON summary per run.
FANOUT_PREFIX = "faults:fanout:"
RECORD_DEADLINE = 120.0


async def _record(ctx: JobContext, event: dict[str, Any]) -> None:
    deadline = time.monotonic() + RECORD_DEADLINE
    while True:
        try:
            secs, micros = await ctx.redis.time()
            line = json.dumps({**event, "t": secs + micros / 1e6}, separators=(",", ":"))
            await ctx.redis.rpush(RECORD_PREFIX + ctx.job_id, line)
            return
        except (RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def step(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Sleep `seconds` (holding the event loop for `block` seconds first, when given), fail on
    the first attempt when `fail_first`, and record start and end (or cancel).

    A cancellation can land while the end is being recorded (a drain deadline at that very
    moment): then "cancel" follows "end", and the run did not return (its end is not a
    completion; the job runs again elsewhere, as any interrupted job does).
    """
    base = {"run": uuid.uuid4().hex[:12], "pid": os.getpid(), "attempt": ctx.attempt}
    await _record(ctx, {**base, "ev": "start"})
    try:
        if payload.get("block"):
            # A blocking call in async code, as workflows contain by accident.
            time.sleep(float(payload["block"]))  # noqa: ASYNC251
        await asyncio.sleep(float(payload.get("seconds", 0.2)))
        if payload.get("fail_first") and ctx.attempt == 1:
            await _record(ctx, {**base, "ev": "fail"})
            raise RuntimeError("first attempt fails on purpose")
        await _record(ctx, {**base, "ev": "end"})
    except asyncio.CancelledError:
        # Drain deadline, cancel request or lost lease: say so, then let cancellation go on.
        await asyncio.shield(_record(ctx, {**base, "ev": "cancel"}))
        raise
    if payload.get("group"):
        # Messages without an id are counted by group: their ids were given by workers.
        await ctx.redis.sadd(GROUP_PREFIX + str(payload["group"]), ctx.job_id)
    return {"slept": payload.get("seconds", 0.2)}


async def churn(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Soak work: sleep, build and drop some data, touch Redis, sometimes fail (to retry)."""
    await asyncio.sleep(float(payload.get("seconds", 0.05)))
    blob = "x" * int(payload.get("bytes", 2048))
    await ctx.redis.set(f"faults:churn:{ctx.job_id}", blob, ex=30)
    if payload.get("fail"):
        raise RuntimeError("churn failed on purpose")
    return {"bytes": len(blob)}


async def gather(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """A fan-out's callback (docs/composition.md): record what it was given (how many
    outcomes, how many successes, whether they are in member order) and its run, like `step`."""
    base = {"run": uuid.uuid4().hex[:12], "pid": os.getpid(), "attempt": ctx.attempt}
    await _record(ctx, {**base, "ev": "start"})
    results = payload.get("results") or []
    summary = {
        "results": len(results),
        "success": sum(1 for r in results if r.get("state") == "success"),
        "ordered": [r.get("id") for r in results]
        == [f"{ctx.job_id}.{n}" for n in range(len(results))],
    }
    deadline = time.monotonic() + RECORD_DEADLINE
    while True:
        try:
            await ctx.redis.rpush(FANOUT_PREFIX + ctx.job_id, json.dumps(summary))
            break
        except (RedisError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    await _record(ctx, {**base, "ev": "end"})
    return summary


WORKFLOWS: WorkflowRegistry = {
    **BUILTIN,
    "step": step,
    "limited": step,
    "churn": churn,
    "gather": gather,
}
