"""An application's workflows, as a user of workflow-worker writes them (tests/test_testing.py
runs this project's tests with pytest, as its author would)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from workflow_worker import JobContext, Permanent, Workflows

workflows = Workflows()


@asynccontextmanager
async def lifespan() -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello"}


@workflows.workflow(max_attempts=2)
async def greet(payload: dict[str, Any], ctx: JobContext) -> str:
    await ctx.progress(0.5, "greeting")
    if not payload.get("name"):
        raise Permanent("no name")
    return f"{ctx.state['greeting']} {payload['name']}"


@workflows.workflow()
def add(payload: dict[str, Any], ctx: JobContext) -> int:
    time.sleep(0.05)  # a plain def workflow: runs in a thread
    ctx.progress(1.0, "added")
    return int(payload["a"]) + int(payload["b"])
