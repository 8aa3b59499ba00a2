"""Workflows for subprocess tests (`WORKER_WORKFLOWS=tests.flows:WORKFLOWS`)."""

from __future__ import annotations

import os
import signal
from typing import Any

from workflow_worker.builtin import WORKFLOWS as BUILTIN
from workflow_worker.workflows.context import JobContext, WorkflowRegistry


async def crash(payload: dict[str, Any], ctx: JobContext) -> None:
    """Kill the worker process running it, as an out-of-memory kill would."""
    os.kill(os.getpid(), signal.SIGKILL)


WORKFLOWS: WorkflowRegistry = {**BUILTIN, "crash": crash}
