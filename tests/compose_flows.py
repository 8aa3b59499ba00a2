"""Workflows for composition tests, in-process and in worker subprocesses
(`WORKER_WORKFLOWS=tests.compose_flows:WORKFLOWS`). Every run leaves a line in Redis, so a
test counts executions across processes and crashes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from workflow_worker.builtin import WORKFLOWS as BUILTIN
from workflow_worker.producer.requests import JobSpec
from workflow_worker.workflows.context import JobContext, WorkflowRegistry

RUNS = "compose:runs"


async def _ran(ctx: JobContext, payload: dict[str, Any]) -> None:
    line = json.dumps({"job": ctx.job_id, "attempt": ctx.attempt, "pid": os.getpid()})
    await ctx.redis.rpush(f"{RUNS}:{payload.get('tag', 'all')}", line)


async def double(payload: dict[str, Any], ctx: JobContext) -> int:
    """Sleep `seconds`, then return twice `n`; `fail` fails every attempt."""
    await asyncio.sleep(float(payload.get("seconds", 0)))
    await _ran(ctx, payload)
    if payload.get("fail"):
        raise RuntimeError(f"member {payload.get('n')} fails on purpose")
    return int(payload.get("n", 0)) * 2


async def collect(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """A group's callback: record the outcomes it was given and return them."""
    await _ran(ctx, payload)
    await ctx.redis.rpush(f"compose:callback:{payload.get('tag', 'all')}", json.dumps(payload))
    return {"results": payload.get("results"), "previous": payload.get("previous")}


async def add(payload: dict[str, Any], ctx: JobContext) -> int:
    """A chain link: the previous link's result (or `start`) plus `n`."""
    await _ran(ctx, payload)
    previous = payload.get("previous")
    base = previous["result"] if previous else payload.get("start", 0)
    if payload.get("fail"):
        raise RuntimeError("link fails on purpose")
    return int(base) + int(payload.get("n", 0))


async def parent(payload: dict[str, Any], ctx: JobContext) -> list[str]:
    """Enqueue two children and a group, then fail on the first attempt (`fail_first`), so
    the next attempt asks for all of them again."""
    await _ran(ctx, payload)
    tag = payload.get("tag", "all")
    first = await ctx.enqueue("double", {"n": 1, "tag": tag})
    second = await ctx.enqueue("double", {"n": 2, "tag": tag}, key="second")
    group = await ctx.group(
        [
            JobSpec("double", {"n": n, "tag": tag, "seconds": payload.get("slow", 0)})
            for n in range(3)
        ],
        then=JobSpec("collect", {"tag": tag}),
    )
    if payload.get("fail_first") and ctx.attempt == 1:
        raise RuntimeError("parent fails after creating its children")
    crash = payload.get("crash_first") and ctx.attempt == 1
    if crash and await ctx.redis.set(f"compose:crashed:{ctx.job_id}", 1, nx=True):
        os.kill(os.getpid(), signal.SIGKILL)
    return [first, second, group]


async def crash_member(payload: dict[str, Any], ctx: JobContext) -> int:
    """A group member that kills its worker the first time it runs (`tag` wide), after
    `seconds`; otherwise as `double`."""
    await asyncio.sleep(float(payload.get("seconds", 0)))
    if await ctx.redis.set(f"compose:crashed:{payload.get('tag')}", 1, nx=True):
        os.kill(os.getpid(), signal.SIGKILL)
    await _ran(ctx, payload)
    return int(payload.get("n", 0)) * 2


async def fan(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Every kind of composition, touching no key but the queue's (for the ACL test)."""
    child = await ctx.enqueue("echo", {"child": True})
    group = await ctx.group([JobSpec("echo", {"n": n}) for n in range(3)], then=JobSpec("echo"))
    links = await ctx.chain([JobSpec("echo", {"link": 0}), JobSpec("echo", {"link": 1})])
    return {"child": child, "group": group, "chain": links}


WORKFLOWS: WorkflowRegistry = {
    **BUILTIN,
    "fan": fan,
    "double": double,
    "collect": collect,
    "add": add,
    "parent": parent,
    "crash_member": crash_member,
}
