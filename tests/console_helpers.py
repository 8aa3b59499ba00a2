"""Start the job console on a real port against the test Redis, for API, HTML and browser tests."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from workflow_worker.console import create_app

TOKEN = "console-test-token-0123456789"
USER = "operator"
PASSWORD = "correct horse battery"


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def running_console(redis_url: str, **overrides: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """A console with a token and basic credentials (unless overridden), served on 127.0.0.1."""
    base: dict[str, Any] = {
        "console_token": TOKEN,
        "console_username": USER,
        "console_password": PASSWORD,
    }
    base.update(overrides)
    app = create_app(make_settings(redis_url, **base))
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
