"""Durable steps with real worker processes: SIGKILL mid-workflow again and again, and a
SIGTERM drain that checkpoints instead of waiting out its 300 s timeout."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import redis

from tests.conftest import WorkerProcess, wait_until
from tests.step_flows import runs_key
from workflow_worker.engine.keys import QueueKeys

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)
FLOWS = "tests.step_flows:WORKFLOWS"
Spawn = Callable[..., WorkerProcess]


def push(client: redis.Redis, workflow: str, job_id: str, **payload: object) -> None:
    job = {"workflow": workflow, "payload": payload, "id": job_id, "enqueued_at": time.time()}
    client.lpush(Q, json.dumps(job))


def runs(client: redis.Redis, tag: str) -> list[int]:
    return [int(client.get(runs_key(tag, step)) or 0) for step in range(1, 6)]


def recorded(client: redis.Redis, job_id: str) -> set[str]:
    keys: list[bytes] = client.hkeys(KEYS.steps(job_id))  # type: ignore[assignment]
    return {k.decode() for k in keys} - {"_run"}


def _started(client: redis.Redis, step: int, count: int) -> Callable[[], bool]:
    return lambda: runs(client, "chaos")[step - 1] >= count


def result(client: redis.Redis, job_id: str) -> object:
    status = client.hgetall(KEYS.job(job_id))
    if status.get(b"state") != b"success":
        return None
    return json.loads(status[b"result"])


def test_sigkill_mid_workflow_again_and_again_runs_each_recorded_step_once(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """A five-step workflow whose worker is SIGKILLed inside steps 1, 3, 3 and 5 (a new worker
    each time) ends with the undisturbed result; each step ran once, plus once more for each
    kill that landed inside it before it was recorded."""
    env = {"WORKER_WORKFLOWS": FLOWS, "WORKER_CONCURRENCY": "1"}
    push(sync_redis, "five_steps", "calm", tag="calm", seconds=0)
    worker = spawn_worker(**env)
    undisturbed = wait_until(lambda: result(sync_redis, "calm"), timeout=30)
    worker.stop()
    push(sync_redis, "five_steps", "chaos", tag="chaos", seconds=0.8)
    worker = spawn_worker(**env)
    killed_in = [0] * 5
    for step in (1, 3, 3, 5):
        # Inside `step`: it has started (one more run than kills so far) and is not recorded.
        started = 1 + killed_in[step - 1]
        wait_until(_started(sync_redis, step, started), timeout=60)
        worker.signal(signal.SIGKILL)
        worker.wait()
        if f"s{step}#1" not in recorded(sync_redis, "chaos"):
            killed_in[step - 1] += 1
        worker = spawn_worker(**env)
    final = wait_until(lambda: result(sync_redis, "chaos"), timeout=60)
    assert final == undisturbed
    assert killed_in == [1, 0, 2, 0, 1], "each kill landed inside its step"
    assert runs(sync_redis, "chaos") == [1 + k for k in killed_in]
    steps = sync_redis.hgetall(KEYS.steps("chaos"))
    assert [json.loads(steps[f"s{i}#1".encode()]) for i in range(1, 6)] == final
    assert sync_redis.hlen(KEYS.processing) == 0


def test_sigterm_checkpoints_a_step_workflow_within_one_step_and_it_finishes_elsewhere(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """With the default 300 s drain timeout, SIGTERM during a 5-step workflow of 1.5 s steps
    exits within about one step (a plain 1 s job on the same worker finishes); the workflow is
    requeued at once, not as an attempt, and another worker finishes it with no step run twice."""
    env = {"WORKER_WORKFLOWS": FLOWS, "WORKER_CONCURRENCY": "2"}
    worker = spawn_worker(**env)
    assert "WORKER_SHUTDOWN_TIMEOUT" not in worker.env, "the default (300 s) drain timeout"
    push(sync_redis, "five_steps", "long", tag="long", seconds=1.5)
    wait_until(lambda: runs(sync_redis, "long")[1] == 1, timeout=30)
    push(sync_redis, "sleep", "plain", seconds=1.0)
    wait_until(lambda: sync_redis.hlen(KEYS.processing) == 2)
    sent = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    took = time.monotonic() - sent
    assert took < 1.5 + 2.0, f"exited {took:.1f}s after SIGTERM, more than about one step"
    assert sync_redis.hget(KEYS.job("plain"), "state") == b"success"
    assert sync_redis.hget(KEYS.job("long"), "state") == b"queued"
    (queued,) = sync_redis.lrange(Q, 0, -1)
    assert json.loads(queued).get("attempt", 1) == 1
    drained = [r for r in worker.log_records() if r.get("message") == "drained"]
    assert drained, worker.log()[-2000:]
    assert drained[0]["finished"] == 1
    assert drained[0]["checkpointed"] == 1
    assert drained[0]["requeued_mid_step"] == 0
    spawn_worker(**env)
    wait_until(lambda: result(sync_redis, "long"), timeout=30)
    assert runs(sync_redis, "long") == [1, 1, 1, 1, 1]
    assert sync_redis.hlen(KEYS.processing) == 0
