from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import myapp_flows
import pytest

from workflow_worker.workflows.context import WorkflowRegistry

pytest_plugins = ["workflow_worker.testing.pytest_plugin"]


@pytest.fixture
def workflow_registry() -> WorkflowRegistry:
    return myapp_flows.workflows


@pytest.fixture
def workflow_lifespan() -> Callable[[], AbstractAsyncContextManager[Any]]:
    return myapp_flows.lifespan
