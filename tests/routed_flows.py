"""A registry with declared queues (`WORKER_WORKFLOWS=tests.routed_flows:WORKFLOWS`)."""

from __future__ import annotations

from typing import Any

from workflow_worker import Workflows
from workflow_worker.workflows.context import JobContext

WORKFLOWS = Workflows()


@WORKFLOWS.workflow(queue="high")
async def urgent(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    return {"urgent": payload}


@WORKFLOWS.workflow
async def plain(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    return {"plain": payload}
