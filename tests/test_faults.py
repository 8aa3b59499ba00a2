"""Faults that used to lose, wedge or double-count jobs, each injected into real worker processes
against a real server: replies lost after the server acted, a server stall past the client's
socket timeout, identical messages, a workflow that blocks the event loop, and a huge message."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bench.faults.proxy import FaultProxy, Rule
from tests.conftest import WorkerProcess, make_settings, wait_until
from tests.servers import RedisServer
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.scripts import lua_source
from workflow_worker.producer.client import JobSpec, SyncClient

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)
FLOWS = "tests.flows:WORKFLOWS"
Spawn = Callable[..., WorkerProcess]


def sha(script: str) -> str:
    return hashlib.sha1(lua_source(script).encode(), usedforsecurity=False).hexdigest()


@pytest.fixture
def proxy(redis_server: RedisServer, redis_url: str) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the test's server (emptied first)."""
    with FaultProxy(redis_server.port) as p:
        yield p


def runs(client: redis.Redis, tag: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in client.lrange(f"rec:{tag}", 0, -1)]


def ends(client: redis.Redis, tag: str) -> Counter[str]:
    return Counter(r["job"] for r in runs(client, tag) if r["ev"] == "end")


def states(client: redis.Redis, ids: list[str]) -> Counter[str]:
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(KEYS.job(job_id), "state")
        return Counter((s or b"none").decode() for s in pipe.execute())


def metric(worker: WorkerProcess, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (-1 while the worker does not
    answer: its loop may be blocked by a job)."""
    status, body = worker.get("/metrics")
    if status != 200:
        return -1.0
    total = 0.0
    for line in body.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def enqueue(redis_url: str, specs: list[JobSpec]) -> list[str]:
    with SyncClient(make_settings(redis_url)) as client:
        return client.enqueue_many(specs)


def test_lost_claim_replies_lose_no_job(
    proxy: FaultProxy, spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """Claims whose replies are lost after the server moved the jobs, or arrive after the
    client gave up waiting (it sends them again), still deliver every job exactly once:
    nothing is overwritten, nothing stranded."""
    for skip in (2, 9, 17, 30):
        proxy.arm(Rule("EVALSHA", "drop_reply", arg=sha("claim"), skip=skip, times=2))
    proxy.arm(Rule("EVALSHA", "delay_reply", arg=sha("claim"), skip=40, times=1, seconds=11))
    spawn_worker(REDIS_URL=proxy.url, WORKER_WORKFLOWS=FLOWS, WORKER_CONCURRENCY="10")
    ids = enqueue(redis_url, [JobSpec("record", {"tag": "c", "seconds": 0.02}) for _ in range(300)])
    wait_until(lambda: states(sync_redis, ids)["success"] == 300, timeout=90)
    assert proxy.fired() == 9
    assert set(ends(sync_redis, "c").values()) == {1}
    assert sync_redis.hlen(KEYS.processing) == 0
    assert sync_redis.llen(Q) == 0


def test_lost_acknowledgement_replies_are_no_false_duplicates(
    proxy: FaultProxy, spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """Batches of outcomes whose replies are lost are sent again; finding their claims gone
    while the worker's lease is live, they count as applied, not as duplicate completions."""
    for skip in (3, 11, 25, 40):
        proxy.arm(Rule("EVALSHA", "drop_reply", arg=sha("apply"), skip=skip, times=2))
    worker = spawn_worker(REDIS_URL=proxy.url, WORKER_WORKFLOWS=FLOWS, WORKER_CONCURRENCY="20")
    ids = enqueue(redis_url, [JobSpec("record", {"tag": "a"}) for _ in range(400)])
    wait_until(lambda: states(sync_redis, ids)["success"] == 400, timeout=90)
    assert proxy.fired() == 8
    assert set(ends(sync_redis, "a").values()) == {1}
    assert metric(worker, "workflow_duplicate_completions_total") == 0
    assert metric(worker, "workflow_jobs_total", status="success") == 400


@pytest.mark.slow
def test_a_redis_stall_past_the_socket_timeout_loses_no_job(
    redis_server: RedisServer, spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """Redis paused for 11 s (past the clients' 10 s socket timeout) while workers are busy:
    every command that timed out and was sent again is harmless, and every job runs once."""
    workers = [spawn_worker(WORKER_CONCURRENCY="10", WORKER_LEASE_SECONDS="30") for _ in range(2)]
    ids = enqueue(redis_url, [JobSpec("sleep", {"seconds": 0.1}) for _ in range(600)])
    wait_until(lambda: states(sync_redis, ids)["success"] > 100, timeout=30)
    # Writes (every script the engine runs) wait; reads, such as this test's, go on.
    sync_redis.client_pause(11000, all=False)
    try:
        wait_until(lambda: states(sync_redis, ids)["success"] == 600, timeout=90)
    finally:
        sync_redis.client_unpause()
    assert sync_redis.hlen(KEYS.processing) == 0
    assert sync_redis.llen(Q) == 0
    assert sum(metric(w, "workflow_jobs_total", status="success") for w in workers) == 600
    assert sum(metric(w, "workflow_duplicate_completions_total") for w in workers) == 0


def test_identical_messages_waiting_for_a_rate_limit_all_run(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """Ten byte-identical messages without an id, put off by a 1-per-second limit, wait as
    ten jobs and all run: none collapses into another while delayed."""
    spawn_worker(WORKER_WORKFLOWS=FLOWS, WORKER_RATE_LIMITS='{"record": {"per_second": 2}}')
    message = json.dumps({"workflow": "record", "payload": {"tag": "same"}})
    sync_redis.lpush(Q, *[message] * 10)
    wait_until(lambda: len(ends(sync_redis, "same")) == 10, timeout=30)
    assert set(ends(sync_redis, "same").values()) == {1}
    wait_until(lambda: sync_redis.hlen(KEYS.processing) == 0, timeout=5)
    assert sync_redis.zcard(KEYS.delayed) == 0


@pytest.mark.slow
def test_a_workflow_that_blocks_the_event_loop_keeps_its_lease(
    spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """A job that blocks the loop for three leases runs once, on one worker: the lease is renewed
    from a thread, and the block is logged with the job and counted."""
    env = {
        "WORKER_WORKFLOWS": FLOWS,
        "WORKER_LEASE_SECONDS": "1.5",
        "WORKER_CONCURRENCY": "4",
        "WORKER_LOG_LEVEL": "INFO",
    }
    workers = [spawn_worker(**env) for _ in range(2)]
    ids = enqueue(redis_url, [JobSpec("block", {"tag": "b", "seconds": 4.5}) for _ in range(4)])
    wait_until(lambda: states(sync_redis, ids)["success"] == 4, timeout=60)
    starts = Counter(r["job"] for r in runs(sync_redis, "b") if r["ev"] == "start")
    assert starts == Counter({job_id: 1 for job_id in ids})
    assert sum(metric(w, "workflow_leases_lost_total") for w in workers) == 0
    assert sum(metric(w, "workflow_event_loop_blocks_total") for w in workers) >= 4
    blocked = [
        r
        for w in workers
        for r in w.log_records()
        if r.get("message", "").startswith("event loop blocked")
    ]
    assert {r["job_id"] for r in blocked} == set(ids)
    assert all(r["blocked_s"] >= 4 and "flows.py" in r["where"] for r in blocked)


@pytest.mark.slow
def test_a_loop_blocked_past_the_stall_limit_gives_its_jobs_back(
    spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """Past WORKER_LOOP_STALL_LIMIT a blocked worker stops renewing its lease: the fleet takes
    the job back and runs it elsewhere, the blocked worker drops it once free (a counted
    duplicate and a lost lease), and a job that blocks every worker it reaches ends in the
    dead-letter list like one that kills its worker."""
    env = {
        "WORKER_WORKFLOWS": FLOWS,
        "WORKER_LEASE_SECONDS": "1.5",
        "WORKER_LOOP_STALL_LIMIT": "2",
        "WORKER_CRASH_REDELIVERY_LIMIT": "1",
        "WORKER_LOG_LEVEL": "INFO",
    }
    stuck = spawn_worker(WORKER_CONCURRENCY="1", **env)
    (job_id,) = enqueue(redis_url, [JobSpec("block", {"tag": "stall", "seconds": 9})])
    wait_until(lambda: runs(sync_redis, "stall"), timeout=15)
    other = spawn_worker(**env)
    wait_until(
        lambda: any(r["pid"] == other.proc.pid for r in runs(sync_redis, "stall")), timeout=30
    )
    wait_until(lambda: metric(stuck, "workflow_leases_lost_total") >= 1, timeout=30)
    assert metric(stuck, "workflow_duplicate_completions_total") >= 1
    assert any("no longer renewing" in r.get("message", "") for r in stuck.log_records())
    wait_until(lambda: states(sync_redis, [job_id])["dead"] == 1, timeout=60)
    entry = json.loads(sync_redis.lindex(KEYS.dead, 0) or b"{}")
    assert entry["kind"] == "crash_budget"
    assert sync_redis.hlen(KEYS.processing) == 0


@pytest.mark.slow
def test_a_huge_message_never_wedges_the_worker(
    spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """A 90 MB message of control bytes is dead-lettered whole without the worker ever reading
    it: normal jobs keep running, memory stays small, health and drain stay prompt."""
    worker = spawn_worker(WORKER_WORKFLOWS=FLOWS, WORKER_CONCURRENCY="8")
    huge = b'{"id":"huge","workflow":"record","payload":{"x":"' + b"\x01" * (90 << 20) + b'"}}'
    sync_redis.lpush(Q, huge)
    ids = enqueue(redis_url, [JobSpec("record", {"tag": "n"}) for _ in range(20)])
    wait_until(lambda: states(sync_redis, ids)["success"] == 20, timeout=30)
    wait_until(lambda: sync_redis.llen(KEYS.dead) == 1, timeout=30)
    entry = json.loads(sync_redis.lindex(KEYS.dead, 0) or b"{}")
    assert entry["kind"] == "too_large"
    assert entry["size"] == len(huge)
    assert entry["job_id"] == "huge"
    assert sync_redis.hstrlen(KEYS.dead_blobs, entry["blob"]) == len(huge)
    assert sync_redis.hget(KEYS.job("huge"), "state") == b"dead"
    assert worker.get("/healthz")[0] == 200
    status_lines = Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines()
    rss_kib = int(next(line.split()[1] for line in status_lines if line.startswith("VmRSS")))
    assert rss_kib < 200 * 1024
    began = time.monotonic()
    assert worker.stop(timeout=20) == 0
    assert time.monotonic() - began < 10
