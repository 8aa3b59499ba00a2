"""Plain `def` workflows for subprocess tests (`WORKER_WORKFLOWS=tests.sync_flows:WORKFLOWS`)."""

from __future__ import annotations

import time
from typing import Any

from workflow_worker.workflows.context import JobContext, WorkflowRegistry


def stuck(payload: dict[str, Any], ctx: JobContext) -> str:
    """Block the worker thread it runs in for `seconds` (a call that will not return soon)."""
    time.sleep(float(payload["seconds"]))
    return "late"


WORKFLOWS: WorkflowRegistry = {"stuck": stuck}
