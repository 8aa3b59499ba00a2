"""Real worker processes: crash re-delivery, graceful drain, HTTP endpoints, Redis restarts."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.conftest import WorkerProcess, wait_until
from tests.servers import RedisServer
from workflow_worker.engine.keys import QueueKeys

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)
Spawn = Callable[..., WorkerProcess]


def push_sleep(client: redis.Redis, job_id: str, seconds: float) -> None:
    job = {
        "workflow": "sleep",
        "payload": {"seconds": seconds},
        "id": job_id,
        "enqueued_at": time.time(),
    }
    client.lpush(Q, json.dumps(job))


def state(client: redis.Redis, job_id: str) -> str | None:
    value = client.hget(KEYS.job(job_id), "state")
    return value.decode() if isinstance(value, bytes) else None


def test_sigkill_mid_job_is_redelivered_to_another_worker(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """A job whose worker is SIGKILLed completes on another worker within the lease bound."""
    victim = spawn_worker(WORKER_CONCURRENCY="2")
    push_sleep(sync_redis, "survivor", 1.5)
    wait_until(lambda: state(sync_redis, "survivor") == "running")
    victim.signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    rescuer = spawn_worker(WORKER_CONCURRENCY="2")
    wait_until(lambda: state(sync_redis, "survivor") == "success", timeout=30)
    redelivery = time.monotonic() - killed_at
    # Lease 3 s + one lease of the rescuer's own connectivity + reap interval + the 1.5 s job.
    assert redelivery < 3 + 3 + 1 + 1.5 + 3
    assert sync_redis.hlen(KEYS.processing) == 0
    status, body = rescuer.get("/metrics")
    assert status == 200
    assert 'workflow_redeliveries_total{queue="workflow:queue"} 1.0' in body


def test_sigterm_lets_running_jobs_finish(spawn_worker: Spawn, sync_redis: redis.Redis) -> None:
    """On SIGTERM the worker stops claiming, finishes in-flight jobs in time and exits 0."""
    worker = spawn_worker(WORKER_CONCURRENCY="2", WORKER_SHUTDOWN_TIMEOUT="20")
    push_sleep(sync_redis, "a", 1.0)
    push_sleep(sync_redis, "b", 1.0)
    wait_until(lambda: sync_redis.hlen(KEYS.processing) == 2)
    worker.signal(signal.SIGTERM)
    push_sleep(sync_redis, "late", 0.1)
    assert wait_until(lambda: worker.get("/readyz")[0] == 503 or worker.proc.poll() is not None)
    assert worker.wait(30) == 0
    assert state(sync_redis, "a") == "success"
    assert state(sync_redis, "b") == "success"
    assert sync_redis.llen(Q) == 1, "nothing may be claimed after SIGTERM"
    assert sync_redis.hlen(KEYS.processing) == 0
    assert sync_redis.zcard(KEYS.workers) == 0


def test_drain_deadline_requeues_at_the_consuming_end(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """Jobs still running at the drain deadline are cancelled and put back to run next."""
    worker = spawn_worker(WORKER_CONCURRENCY="1", WORKER_SHUTDOWN_TIMEOUT="0.5")
    push_sleep(sync_redis, "long", 60)
    wait_until(lambda: state(sync_redis, "long") == "running")
    push_sleep(sync_redis, "waiting", 1)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert sync_redis.hlen(KEYS.processing) == 0
    queued = [json.loads(item)["id"] for item in sync_redis.lrange(Q, 0, -1)]
    assert queued == ["waiting", "long"], "the requeued job must be next out (right end)"
    assert state(sync_redis, "long") == "queued"
    records = worker.log_records()
    assert any(r.get("outcome") == "requeued" and r.get("job_id") == "long" for r in records)


def test_second_signal_skips_the_wait_but_still_requeues(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """A second SIGTERM stops waiting at once, and the running job is requeued, not lost."""
    worker = spawn_worker(WORKER_CONCURRENCY="3", WORKER_SHUTDOWN_TIMEOUT="300")
    for i in range(3):
        push_sleep(sync_redis, f"j{i}", 60)
    wait_until(lambda: sync_redis.hlen(KEYS.processing) == 3)
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert time.monotonic() - started < 10
    assert sorted(json.loads(x)["id"] for x in sync_redis.lrange(Q, 0, -1)) == ["j0", "j1", "j2"]
    assert sync_redis.hlen(KEYS.processing) == 0


def test_http_endpoints_over_real_http(spawn_worker: Spawn, sync_redis: redis.Redis) -> None:
    """/healthz, /readyz and /metrics answer over HTTP with the contract's metric names."""
    worker = spawn_worker(WORKER_CONCURRENCY="3")
    push_sleep(sync_redis, "m", 0.05)
    wait_until(lambda: state(sync_redis, "m") == "success")
    assert worker.get("/healthz") == (200, '{"status": "ok"}')
    code, body = worker.get("/readyz")
    assert code == 200
    assert json.loads(body)["status"] == "ready"
    wait_until(lambda: "workflow_job_duration_seconds_count" in worker.get("/metrics")[1])
    code, text = worker.get("/metrics")
    assert code == 200
    for name in (
        "workflow_jobs_active",
        "workflow_jobs_capacity",
        "workflow_jobs_queued",
        "workflow_jobs_inflight",
        "workflow_jobs_total",
        "workflow_job_duration_seconds_bucket",
        "workflow_job_wait_seconds_bucket",
        "workflow_redeliveries_total",
        "workflow_redis_errors_total",
        "workflow_event_loop_lag_seconds",
    ):
        assert name in text, name
    assert 'workflow_jobs_capacity{queue="workflow:queue"} 3.0' in text
    assert (
        'workflow_jobs_total{queue="workflow:queue",status="success",workflow="sleep"} 1.0' in text
    )
    assert '"m"' not in text, "no job id in metrics"
    assert "payload" not in text, "no job data in metrics"


def test_redis_restart_mid_run_loses_nothing(spawn_worker: Spawn, tmp_path: Path) -> None:
    """Redis (append-only) restarts while jobs run; the worker reconnects and every job ends."""
    server = RedisServer(tmp_path / "aof", appendonly=True)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        worker = spawn_worker(WORKER_CONCURRENCY="5", REDIS_URL=server.url, wait_ready=True)
        ids = [f"r{i}" for i in range(20)]
        for job_id in ids:
            push_sleep(client, job_id, 0.5)
        wait_until(lambda: client.hlen(KEYS.processing) == 5)
        server.stop()
        wait_until(lambda: worker.get("/readyz")[0] == 503, timeout=15)
        time.sleep(1.0)
        server.start()
        client = redis.Redis.from_url(server.url)
        wait_until(lambda: worker.get("/readyz")[0] == 200, timeout=20)
        wait_until(lambda: all(state(client, i) == "success" for i in ids), timeout=60)
        assert client.llen(Q) == 0
        assert client.hlen(KEYS.processing) == 0
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        client.close()
    finally:
        server.stop()


def test_worker_without_redis_is_alive_but_not_ready(spawn_worker: Spawn) -> None:
    """With Redis unreachable at start-up the worker stays up: live, not ready, and says why."""
    worker = spawn_worker(wait_ready=False, REDIS_URL="redis://127.0.0.1:1/0")
    wait_until(lambda: worker.get("/healthz")[0] == 200, timeout=15)
    code, body = worker.get("/readyz")
    assert code == 503
    assert "not registered" in body
    time.sleep(1)
    assert worker.proc.poll() is None, "it must not crash-loop"
    assert "cannot reach Redis" in worker.log()
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
