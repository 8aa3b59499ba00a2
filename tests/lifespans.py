"""A lifespan and workflows for subprocess tests (`WORKER_LIFESPAN=tests.lifespans:lifespan`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

from workflow_worker.workflows.context import JobContext, WorkflowRegistry

LOG = "lifespan:log"


@asynccontextmanager
async def lifespan() -> AsyncIterator[dict[str, Any]]:
    """Open one Redis client for the process, note entry and exit in `lifespan:log`."""
    client = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    await client.rpush(LOG, f"enter {os.getpid()}")
    yield {"client": client, "pid": os.getpid()}
    await client.rpush(LOG, f"exit {os.getpid()}")
    await client.aclose()


@asynccontextmanager
async def broken() -> AsyncIterator[None]:
    """A lifespan whose start fails, as a database that cannot be reached would."""
    raise ConnectionRefusedError("database at db:5432 refused the connection")
    yield  # pragma: no cover


async def use_state(payload: dict[str, Any], ctx: JobContext) -> int:
    """Use the lifespan's client; return the pid the lifespan ran in."""
    client = ctx.state["client"]
    await client.rpush(LOG, f"job start {ctx.job_id}")
    await asyncio.sleep(float(payload.get("seconds", 0)))
    await client.rpush(LOG, f"job end {ctx.job_id}")
    return int(ctx.state["pid"])


WORKFLOWS: WorkflowRegistry = {"use_state": use_state}
