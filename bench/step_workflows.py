"""Workflows of `just bench-steps` (`WORKER_WORKFLOWS=bench.step_workflows:WORKFLOWS`)."""

from __future__ import annotations

import asyncio
from typing import Any

from workflow_worker.workflows.context import JobContext, WorkflowRegistry


def runs_key(job_id: str, step: int) -> str:
    """How many times one step of one job ran (INCR by the step)."""
    return f"bench:steps:runs:{job_id}:{step}"


async def _noop(i: int) -> int:
    return i


async def noop_steps(payload: dict[str, Any], ctx: JobContext) -> int:
    """`steps` durable steps that do nothing: what a step costs the worker and Redis."""
    total = 0
    for i in range(int(payload["steps"])):
        total += await ctx.step("s", _noop, i)
    return total


async def noop_plain(payload: dict[str, Any], ctx: JobContext) -> int:
    """The same calls without steps: the baseline."""
    total = 0
    for i in range(int(payload["steps"])):
        total += await _noop(i)
    return total


async def _segment(ctx: JobContext, step: int, seconds: float) -> int:
    await ctx.redis.incr(runs_key(ctx.job_id, step))
    await asyncio.sleep(seconds)
    return step


async def five_steps(payload: dict[str, Any], ctx: JobContext) -> int:
    """Five durable steps sharing `seconds` of I/O wait."""
    part = float(payload["seconds"]) / 5
    return sum([await ctx.step(f"s{i}", _segment, ctx, i, part) for i in range(1, 6)])


async def five_plain(payload: dict[str, Any], ctx: JobContext) -> int:
    """The same five segments without steps: a re-delivery starts from the first."""
    part = float(payload["seconds"]) / 5
    return sum([await _segment(ctx, i, part) for i in range(1, 6)])


WORKFLOWS: WorkflowRegistry = {
    "noop_steps": noop_steps,
    "noop_plain": noop_plain,
    "five_steps": five_steps,
    "five_plain": five_plain,
}
