"""The job console: a web page and JSON API to find, inspect and fix jobs (docs/console.md)."""

from __future__ import annotations

from workflow_worker.console.auth import check_auth_settings
from workflow_worker.console.server import create_app, serve

__all__ = ["check_auth_settings", "create_app", "serve"]
