"""Load the application's workflow registry named by WORKER_WORKFLOWS."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from workflow_worker.errors import ConfigError
from workflow_worker.workflows.context import WorkflowRegistry

__all__ = ["load_registry"]


def load_registry(path: str) -> WorkflowRegistry:
    """Import `module:attribute` and check it maps names to async callables."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("WORKER_WORKFLOWS", path, f"an importable module ({exc})") from None
    registry = getattr(module, attr, None)
    if not isinstance(registry, Mapping):
        raise ConfigError("WORKER_WORKFLOWS", path, "a mapping of workflow name to async function")
    for name, func in registry.items():
        if not isinstance(name, str) or not callable(func):
            raise ConfigError(
                "WORKER_WORKFLOWS", path, f"string keys and callable values (bad entry {name!r})"
            )
    return registry
