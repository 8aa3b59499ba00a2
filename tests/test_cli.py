"""The command line against a real server: enqueue, status, job, cancel and dead-letter tools."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from functools import partial

import redis

from tests.conftest import WorkerProcess, run_cli, wait_until
from workflow_worker.engine.keys import QueueKeys

KEYS = QueueKeys.for_queue("workflow:queue")


def cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(redis_url, *args)


def test_enqueue_status_and_job(redis_url: str) -> None:
    """`enqueue` prints ids, `status --json` counts them, `job` prints a record."""
    out = cli(redis_url, "enqueue", "echo", "--payload", '{"a": 1}', "--count", "3")
    assert out.returncode == 0, out.stderr
    ids = out.stdout.split()
    assert len(ids) == 3
    status = json.loads(cli(redis_url, "status", "--json").stdout)
    assert (status["queued"], status["inflight"], status["dead"]) == (3, 0, 0)
    record = json.loads(cli(redis_url, "job", ids[0], "--json").stdout)
    assert record["state"] == "queued"
    assert record["workflow"] == "echo"
    assert cli(redis_url, "job", "missing").returncode == 1


def test_enqueue_unique_and_bad_payload(redis_url: str) -> None:
    """A duplicate id is reported with exit code 3; a non-object payload is refused."""
    assert cli(redis_url, "enqueue", "echo", "--id", "j1").returncode == 0
    dup = cli(redis_url, "enqueue", "echo", "--id", "j1")
    assert dup.returncode == 3
    assert "duplicate of j1" in dup.stdout
    bad = cli(redis_url, "enqueue", "echo", "--payload", "[1]")
    assert bad.returncode != 0
    assert "must be a JSON object" in bad.stderr


def test_cancel_and_dead_letter_commands(
    redis_url: str, sync_redis: redis.Redis, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    """`cancel`, and `dead list/show/requeue/purge` work on real entries."""
    assert cli(redis_url, "enqueue", "echo", "--id", "c1", "--delay", "60").returncode == 0
    out = cli(redis_url, "cancel", "c1")
    assert out.returncode == 0
    assert "c1: cancelled" in out.stdout
    sync_redis.lpush("workflow:queue", b"not json", b'{"workflow": "nope"}')
    worker = spawn_worker()
    wait_until(lambda: sync_redis.llen(KEYS.dead) == 2)
    listing = cli(redis_url, "dead", "list")
    assert "unknown workflow 'nope'" in listing.stdout
    assert "not valid JSON" in listing.stdout
    # Both were claimed together and handled concurrently: their order in the list varies.
    shown = [json.loads(cli(redis_url, "dead", "show", str(i)).stdout) for i in (0, 1)]
    assert {entry["job"] for entry in shown} == {"not json", '{"workflow": "nope"}'}
    assert cli(redis_url, "dead", "requeue", "0").stdout.strip() == "requeued 1"
    wait_until(lambda: sync_redis.llen(KEYS.dead) == 2)
    assert cli(redis_url, "dead", "purge").returncode == 1
    assert cli(redis_url, "dead", "purge", "--yes").stdout.strip() == "purged 2"
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def _died_or_buried(worker: WorkerProcess, client: redis.Redis) -> bool:
    return worker.proc.poll() is not None or bool(client.llen(KEYS.dead))


def test_crash_budget_dead_letters_a_job_that_keeps_killing_workers(
    redis_url: str, sync_redis: redis.Redis, spawn_worker: Callable[..., WorkerProcess]
) -> None:
    """A job that SIGKILLs every worker running it is dead-lettered after K re-deliveries."""
    env = {
        "WORKER_WORKFLOWS": "tests.flows:WORKFLOWS",
        "WORKER_LEASE_SECONDS": "1",
        "WORKER_CRASH_REDELIVERY_LIMIT": "2",
    }
    assert cli(redis_url, "enqueue", "crash", "--id", "oom").returncode == 0
    crashes = 0
    while not sync_redis.llen(KEYS.dead):
        worker = spawn_worker(wait_ready=False, **env)
        wait_until(partial(_died_or_buried, worker, sync_redis), 30)
        if worker.proc.poll() is not None:
            assert worker.proc.returncode == -signal.SIGKILL
            crashes += 1
        assert crashes <= 3, "the budget must stop the crash loop"
    assert crashes == 3, "first delivery plus two re-deliveries, then the dead-letter list"
    survivor = worker
    entry = json.loads(sync_redis.lindex(KEYS.dead, 0) or b"{}")
    assert entry["kind"] == "crash_budget"
    assert json.loads(entry["job"])["id"] == "oom"
    assert sync_redis.llen("workflow:queue") == 0
    assert sync_redis.hlen(KEYS.processing) == 0
    survivor.signal(signal.SIGTERM)
    assert survivor.wait() == 0
