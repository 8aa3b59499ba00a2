"""WORKER_LIFESPAN: entered once per worker process before claiming, left after the drain, its
state in every job's `ctx.state`; a lifespan that fails stops start-up with one line."""

from __future__ import annotations

import signal
from collections.abc import Callable

import redis

from tests.conftest import WorkerProcess, make_settings, run_cli, wait_until
from tests.lifespans import LOG
from workflow_worker.engine.queue import as_text
from workflow_worker.producer.client import SyncClient
from workflow_worker.settings import Settings


def test_lifespan_wraps_the_worker_and_its_state_reaches_jobs(
    spawn_worker: Callable[..., WorkerProcess], redis_url: str, sync_redis: redis.Redis
) -> None:
    """A worker process enters its lifespan once before its first job, every job gets what it
    yielded, and it leaves the lifespan only after a job running at SIGTERM has ended."""
    worker = spawn_worker(
        WORKER_WORKFLOWS="tests.lifespans:WORKFLOWS", WORKER_LIFESPAN="tests.lifespans:lifespan"
    )
    pid = worker.proc.pid
    with SyncClient(make_settings(redis_url)) as client:
        first = client.enqueue("use_state", {})
        assert client.result(first, timeout=10) == pid
        second = client.enqueue("use_state", {"seconds": 1.0})
        wait_until(lambda: sync_redis.llen(LOG) >= 4)
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        assert client.result(second, timeout=5) == pid
    log = [as_text(line) for line in sync_redis.lrange(LOG, 0, -1)]
    assert log == [
        f"enter {pid}",
        f"job start {first}",
        f"job end {first}",
        f"job start {second}",
        f"job end {second}",
        f"exit {pid}",
    ]


def test_a_lifespan_that_fails_stops_start_up_with_one_line(redis_url: str) -> None:
    """A lifespan raising on entry ends `run` with a non-zero exit and one line naming
    WORKER_LIFESPAN and the error, no traceback."""
    done = run_cli(
        redis_url,
        "run",
        timeout=60,
        WORKER_WORKFLOWS="tests.lifespans:WORKFLOWS",
        WORKER_LIFESPAN="tests.lifespans:broken",
        WORKER_HTTP_PORT="0",
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    line = [x for x in done.stderr.splitlines() if "WORKER_LIFESPAN" in x]
    assert len(line) == 1, done.stderr
    assert "ConnectionRefusedError: database at db:5432 refused the connection" in line[0]
    assert "tests/lifespans.py line" in line[0]


def test_lifespan_names_a_missing_function_at_start_up(redis_url: str) -> None:
    """WORKER_LIFESPAN naming an attribute the module does not have fails before start-up."""
    done = run_cli(redis_url, "run", WORKER_LIFESPAN="tests.lifespans:nope", WORKER_HTTP_PORT="0")
    assert done.returncode != 0
    assert "WORKER_LIFESPAN='tests.lifespans:nope' cannot be used" in done.stderr
    assert "has no 'nope'" in done.stderr
    assert Settings.from_env({"WORKER_LIFESPAN": "a.b:c"}).lifespan == "a.b:c"
