"""Workflows with durable steps for subprocess tests and the step benchmark
(`WORKER_WORKFLOWS=tests.step_flows:WORKFLOWS`)."""

from __future__ import annotations

import asyncio
from typing import Any

from workflow_worker.builtin import WORKFLOWS as BUILTIN
from workflow_worker.workflows.context import JobContext, WorkflowRegistry


def runs_key(tag: str, step: int) -> str:
    """Counter of the executions of one step of the jobs of `tag` (INCR by the step itself)."""
    return f"runs:{tag}:{step}"


async def five_steps(payload: dict[str, Any], ctx: JobContext) -> list[int]:
    """Five steps in a chain; each counts its execution in Redis, sleeps, and returns a value
    that depends only on the previous one (so any run's result is comparable)."""
    tag, seconds = str(payload["tag"]), float(payload.get("seconds", 0))

    async def work(step: int, previous: int) -> int:
        await ctx.redis.incr(runs_key(tag, step))
        await asyncio.sleep(seconds)
        return previous * 31 + step

    results: list[int] = []
    value = int(payload.get("seed", 7))
    for step in range(1, int(payload.get("steps", 5)) + 1):
        value = await ctx.step(f"s{step}", work, step, value)
        results.append(value)
    return results


async def five_plain(payload: dict[str, Any], ctx: JobContext) -> list[int]:
    """The same work as `five_steps`, without steps: a re-delivery starts from the first."""
    tag, seconds = str(payload["tag"]), float(payload.get("seconds", 0))
    results: list[int] = []
    value = int(payload.get("seed", 7))
    for step in range(1, int(payload.get("steps", 5)) + 1):
        await ctx.redis.incr(runs_key(tag, step))
        await asyncio.sleep(seconds)
        value = value * 31 + step
        results.append(value)
    return results


WORKFLOWS: WorkflowRegistry = {**BUILTIN, "five_steps": five_steps, "five_plain": five_plain}
