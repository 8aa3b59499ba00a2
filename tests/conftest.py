"""Shared fixtures: a real Redis server per session, in-process and subprocess workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import uvloop

from tests.servers import RedisServer
from workflow_worker.app import Worker
from workflow_worker.local import devstack
from workflow_worker.settings import Settings
from workflow_worker.workflows.context import WorkflowRegistry

ROOT = Path(__file__).resolve().parent.parent
# An application's own project, run by tests/test_testing.py in a pytest of its own.
collect_ignore = ["userproject"]


# Runs a scenario coroutine to its end on one event loop.
Runner = Callable[[Coroutine[Any, Any, None]], None]
LOOPS: dict[str, Runner] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Runner:
    """The test runs twice: its scenario on the standard asyncio loop, then on uvloop (the
    worker's loop), whose transports are different classes."""
    return LOOPS[request.param]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real server for the session, on a free port, with its own data directory."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied before each test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    """Settings for tests: ephemeral HTTP port, short lease and backoff."""
    base: dict[str, Any] = {
        "redis_url": redis_url,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "lease_seconds": 3.0,
        "retry_backoff_seconds": 0.05,
        "retry_backoff_max_seconds": 0.2,
        "metrics_interval": 0.2,
        "log_format": "json",
        "log_level": "WARNING",
    }
    base.update(overrides)
    if "queue" in overrides and "queues" not in overrides:
        base["queues"] = (overrides["queue"],)
    return Settings(**base)


@dataclass
class RunningWorker:
    """An in-process worker running as a task on the test's event loop."""

    worker: Worker
    task: asyncio.Task[int]

    @property
    def port(self) -> int:
        return self.worker.http_port

    async def stop(self, timeout: float = 30.0) -> int:
        self.worker.request_stop()
        return await asyncio.wait_for(self.task, timeout)


WorkerFactory = Callable[..., Any]


@pytest.fixture
async def start_worker(redis_url: str) -> AsyncIterator[WorkerFactory]:
    """Start in-process workers (`await start_worker(registry=..., **settings)`); stops them all."""
    started: list[RunningWorker] = []

    async def start(registry: WorkflowRegistry | None = None, **overrides: Any) -> RunningWorker:
        worker = Worker(make_settings(redis_url, **overrides), registry=registry)
        ready = asyncio.Event()
        task = asyncio.create_task(worker.run(ready))
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        assert ready.is_set(), "worker did not become ready"
        running = RunningWorker(worker, task)
        started.append(running)
        return running

    yield start
    for running in started:
        if not running.task.done():
            running.worker.request_stop()
            running.worker.request_stop()
            # Longer than the worker's own bounded shutdown (requeue, flush, lease release), so
            # the worker closes its Redis client itself.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running.task, 90)


class WorkerProcess(devstack.WorkerProcess):
    """A worker subprocess, with test helpers for its log and signals."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)


def worker_env(redis_url: str, **env: str) -> dict[str, str]:
    """Worker settings for tests: short lease and backoff, JSON logs."""
    base = devstack.worker_environment(redis_url)
    base.update(
        WORKER_LEASE_SECONDS="3",
        WORKER_RETRY_BACKOFF_SECONDS="0.05",
        WORKER_RETRY_BACKOFF_MAX_SECONDS="0.2",
        WORKER_METRICS_INTERVAL="0.2",
        WORKER_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    base.update(env)
    return base


def run_cli(
    redis_url: str, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m worker ARGS` to completion with the test settings (and `env`)."""
    return subprocess.run(
        [sys.executable, "-m", "workflow_worker", *args],
        env=worker_env(redis_url, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture
def spawn_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker subprocesses (`spawn_worker(WORKER_CONCURRENCY="5")`); kills leftovers."""
    procs: list[WorkerProcess] = []

    def spawn(wait_ready: bool = True, **env: str) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(procs)}.log"
        handle = WorkerProcess(worker_env(redis_url, **env), log_path)
        procs.append(handle)
        if wait_ready:
            handle.wait_ready()
        return handle

    yield spawn
    for handle in procs:
        if handle.proc.poll() is None:
            handle.proc.kill()
            handle.proc.wait()


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Blocking form of `wait_for`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
