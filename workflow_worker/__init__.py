"""workflow-worker: a reliable Redis-list worker for I/O-bound asyncio workflows."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from workflow_worker.errors import (
    ConfigError,
    DuplicateJob,
    JobCancelled,
    JobFailed,
    PayloadTooLarge,
    Permanent,
    Retry,
)
from workflow_worker.producer.client import (
    Client,
    JobSpec,
    SyncClient,
    enqueue,
    enqueue_sync,
)
from workflow_worker.settings import Settings
from workflow_worker.workflows.context import JobContext
from workflow_worker.workflows.workflows import Workflows

__all__ = [
    "Client",
    "ConfigError",
    "DuplicateJob",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobSpec",
    "PayloadTooLarge",
    "Permanent",
    "Retry",
    "Settings",
    "SyncClient",
    "Workflows",
    "__version__",
    "enqueue",
    "enqueue_sync",
]

try:
    __version__ = version("workflow-worker")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
