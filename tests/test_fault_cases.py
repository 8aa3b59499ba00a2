"""The rest of the fault model, against real worker processes and real servers: every
dead-letter path ends the job's record and lock, records and locks outlive long delays, a job
just under the size limit can retry, Redis's memory policy is checked and a full Redis drains,
and clocks that disagree do not move due times."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import workflow_worker.producer.requests as requests_module
from tests.conftest import ROOT, WorkerProcess, make_settings, run_cli, wait_until, worker_env
from tests.servers import RedisServer
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import DuplicateJob, JobFailed, SyncClient
from workflow_worker.settings import claim_limit

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)
FLOWS = "tests.flows:WORKFLOWS"
Spawn = Callable[..., WorkerProcess]


def client_for(url: str, **settings: object) -> SyncClient:
    return SyncClient(make_settings(url, **settings))


def runs(client: redis.Redis, tag: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in client.lrange(f"rec:{tag}", 0, -1)]


@pytest.mark.slow
def test_the_crash_budget_ends_the_record_and_releases_the_lock(
    spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """A job that kills its worker every time is dead-lettered after the budget: result()
    returns at once with the reason, and the same id can be enqueued again."""
    env = {
        "WORKER_WORKFLOWS": FLOWS,
        "WORKER_LEASE_SECONDS": "1",
        "WORKER_CRASH_REDELIVERY_LIMIT": "1",
    }
    with client_for(redis_url) as client:
        client.enqueue("crash", {}, id="doomed")
        for _ in range(2):  # first run, then the one re-delivery the budget allows
            _wait_exit(spawn_worker(wait_ready=False, **env))
        reaper = spawn_worker(**env)
        wait_until(lambda: sync_redis.llen(KEYS.dead) == 1, timeout=20)
        with pytest.raises(JobFailed, match="crash redelivery budget"):
            client.result("doomed", timeout=5)
        assert sync_redis.exists(KEYS.unique("id:doomed"), KEYS.cancel("doomed")) == 0
        assert client.enqueue("echo", {}, id="doomed") == "doomed"
        assert client.result("doomed", timeout=15) == {}
    assert reaper.proc.poll() is None


@pytest.mark.slow
def test_a_re_delivered_message_without_an_id_leaves_no_crash_count_behind(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """A message without an id whose worker dies once is re-delivered under an id of its own,
    runs, and its crash count is cleared with it: nothing is left in the redeliveries hash."""
    env = {"WORKER_WORKFLOWS": FLOWS, "WORKER_LEASE_SECONDS": "1"}
    sync_redis.lpush(Q, json.dumps({"workflow": "crash_once", "payload": {"tag": "c"}}))
    _wait_exit(spawn_worker(wait_ready=False, **env))
    spawn_worker(**env)
    wait_until(lambda: len(runs(sync_redis, "c")) == 1, timeout=20)
    wait_until(lambda: sync_redis.hlen(KEYS.processing) == 0, timeout=10)
    assert sync_redis.hlen(KEYS.redeliveries) == 0
    assert sync_redis.llen(KEYS.dead) == 0


def test_a_message_that_cannot_run_ends_its_record_and_lock(
    spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """A job of this client's whose message turned unrunnable on the queue (bad field, unknown
    workflow, cancelled while waiting) ends with a final record and no lock or request left."""
    with client_for(redis_url) as client:
        client.enqueue("echo", {}, id="broken")
        # What a bad retry or a foreign writer leaves on the queue for that job.
        bad = {"unique_key": "id:broken", "id": "broken", "workflow": "echo", "max_attempts": -1}
        sync_redis.lset(Q, 0, json.dumps(bad))
        client.enqueue("nope", {}, id="unknown")
        client.enqueue("nope", {}, id="cancelled")
        assert client.cancel("cancelled") == "cancelled"
        spawn_worker(WORKER_WORKFLOWS=FLOWS)
        for job_id in ("broken", "unknown", "cancelled"):
            with pytest.raises(JobFailed):
                client.result(job_id, timeout=15)
        assert client.status("broken")["state"] == "dead"  # type: ignore[index]
        assert "max_attempts" in client.status("broken")["error"]  # type: ignore[index]
        assert client.status("unknown")["state"] == "dead"  # type: ignore[index]
        for job_id in ("broken", "unknown", "cancelled"):
            assert sync_redis.exists(KEYS.unique(f"id:{job_id}"), KEYS.cancel(job_id)) == 0
        assert sync_redis.llen(KEYS.dead) == 3
        assert client.enqueue("echo", {}, id="broken") == "broken"


def test_the_client_refuses_what_a_worker_would_dead_letter(
    sync_redis: redis.Redis, redis_url: str
) -> None:
    """max_attempts, timeout and delay are checked when enqueueing: nothing is written."""
    with client_for(redis_url) as client:
        for bad in ({"max_attempts": -1}, {"max_attempts": 0}, {"timeout": -1.0}):
            with pytest.raises(ValueError, match=next(iter(bad))):
                client.enqueue("echo", {}, **bad)
        with pytest.raises(ValueError, match="delay"):
            client.enqueue("echo", {}, delay=float("nan"))
    assert sync_redis.dbsize() == 0


@pytest.mark.slow
def test_a_job_delayed_past_the_result_ttl_keeps_its_record_and_lock(
    spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str
) -> None:
    """With a 2 s result TTL, a job delayed 5 s can still be found, is still unique, can still
    be cancelled, and runs once when due."""
    # The worker is up before the jobs are due (a job claimed more than a TTL after it was
    # due is the backlog case docs/guarantees.md does not promise).
    spawn_worker(WORKER_WORKFLOWS=FLOWS, WORKER_RESULT_TTL="2")
    with client_for(redis_url, result_ttl=2) as client:
        client.enqueue("record", {"tag": "d"}, id="later", delay=5)
        client.enqueue("echo", {}, id="cancel-me", delay=5)
        time.sleep(3)
        assert client.status("later")["state"] == "delayed"  # type: ignore[index]
        with pytest.raises(DuplicateJob):
            client.enqueue("record", {"tag": "d"}, id="later")
        assert client.cancel("cancel-me") == "cancelled"
        assert client.result("later", timeout=15) == {"tag": "d"}
        assert [r["ev"] for r in runs(sync_redis, "d")] == ["start", "end"]
        with pytest.raises(JobFailed, match="cancelled"):
            client.result("cancel-me", timeout=10)


def _message_of(size: int, floats: int, job_id: str) -> str:
    """A message of exactly `size` bytes whose numbers grow when re-encoded (1E5 -> 100000.0)."""
    numbers = ",".join(["1E5"] * floats)
    head = '{"id":"' + job_id + '","workflow":"fail_once","payload":{"n":[' + numbers + '],"p":"'
    return head + "p" * (size - len(head) - 3) + '"}}'


def test_a_job_just_under_the_size_limit_can_retry(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """A message a producer wrote just under WORKER_MAX_PAYLOAD_BYTES, which grows when a worker
    writes it back for its retry (numbers re-encoded, attempt added), still retries and ends."""
    limit = 4096
    message = _message_of(limit, 40, "big")
    spawn_worker(WORKER_WORKFLOWS=FLOWS, WORKER_MAX_PAYLOAD_BYTES=str(limit))
    sync_redis.lpush(Q, message)
    wait_until(lambda: sync_redis.hget(KEYS.job("big"), "state") == b"success", timeout=20)
    assert sync_redis.llen(KEYS.dead) == 0
    assert sync_redis.hget(KEYS.job("big"), "attempt") == b"2"


def test_a_retry_that_would_outgrow_the_limit_ends_with_its_reason(
    spawn_worker: Spawn, sync_redis: redis.Redis
) -> None:
    """A message that would grow past what workers take (a sixteenth over the limit) is not
    retried into a dead end: it fails at once, its record final, with the sizes in the reason."""
    limit = 4096
    spawn_worker(WORKER_WORKFLOWS=FLOWS, WORKER_MAX_PAYLOAD_BYTES=str(limit))
    sync_redis.lpush(Q, _message_of(limit, 800, "bloats"))
    wait_until(lambda: sync_redis.hget(KEYS.job("bloats"), "state") == b"failure", timeout=20)
    entry = json.loads(sync_redis.lindex(KEYS.dead, 0) or b"{}")
    assert f"over the {claim_limit(limit)}-byte limit" in entry["reason"]
    assert "first attempt fails on purpose" in entry["reason"]


def _wait_exit(worker: WorkerProcess) -> None:
    wait_until(lambda: worker.proc.poll() is not None, timeout=20)


def _server(tmp_path: Path, *args: str) -> RedisServer:
    server = RedisServer(tmp_path / "redis", extra_args=args)
    server.start()
    return server


@pytest.mark.parametrize(
    ("policy", "what"),
    [("allkeys-lru", "queued jobs"), ("volatile-lru", "status records and unique locks")],
)
def test_an_evicting_redis_is_refused_at_start_up(tmp_path: Path, policy: str, what: str) -> None:
    """A worker exits 2 naming maxmemory-policy when Redis may evict its keys, unless the
    operator accepts the risk with WORKER_ALLOW_EVICTION=1 (then /readyz reports the policy)."""
    server = _server(tmp_path, "--maxmemory", "100mb", "--maxmemory-policy", policy)
    try:
        done = run_cli(server.url, "run", timeout=30, WORKER_HTTP_PORT="0")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "maxmemory-policy" in done.stderr
        assert policy in done.stderr
        assert what in done.stderr
        assert "Traceback" not in done.stderr
        env = worker_env(server.url, WORKER_ALLOW_EVICTION="1")
        worker = WorkerProcess(env, tmp_path / "w.log")
        try:
            worker.wait_ready()
            body = json.loads(worker.get("/readyz")[1])
            assert body["redis"]["maxmemory_policy"] == policy
            assert body["redis"]["appendonly"] == "no"
        finally:
            worker.stop()
    finally:
        server.stop()


@pytest.mark.slow
def test_a_full_redis_refuses_producers_and_drains(tmp_path: Path) -> None:
    """With maxmemory reached and noeviction, producers get a clear out-of-memory refusal, while
    workers still claim, run and acknowledge, which frees memory: the queue drains and producers
    are accepted again without anyone stepping in."""
    server = _server(tmp_path, "--maxmemory", "24mb", "--maxmemory-policy", "noeviction")
    admin = redis.Redis(port=server.port)
    try:
        with client_for(server.url) as client:
            blob = "x" * 50_000
            accepted = _fill(client, blob)
            assert accepted > 100
            env = worker_env(server.url, WORKER_CONCURRENCY="20")
            worker = WorkerProcess(env, tmp_path / "w.log")
            try:
                worker.wait_ready()
                wait_until(lambda: admin.llen(Q) == 0, timeout=60)
                wait_until(lambda: admin.hlen(KEYS.processing) == 0, timeout=10)
                assert client.result(f"j{accepted - 1}", timeout=10) is None
                assert client.enqueue("noop", {"blob": blob}, id="after") == "after"
            finally:
                worker.stop()
    finally:
        admin.close()
        server.stop()


def test_a_producer_whose_clock_is_behind_still_gets_its_delay(
    spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A producer 120 s behind asks for a 3 s delay: the job is due 3 s after the server
    received it, not at once."""
    monkeypatch.setattr(requests_module, "time", _Clock(-120))
    with client_for(redis_url) as client:
        client.enqueue("record", {"tag": "skew"}, id="p", delay=3)
    monkeypatch.undo()
    sent = _server_time(sync_redis)
    spawn_worker(WORKER_WORKFLOWS=FLOWS)
    wait_until(lambda: sync_redis.hget(KEYS.job("p"), "state") == b"success", timeout=20)
    (start, _end) = runs(sync_redis, "skew")
    assert float(start["t"]) >= sent + 2.9  # type: ignore[arg-type]


def test_a_worker_whose_clock_is_ahead_keeps_backoffs_short(
    spawn_worker: Spawn, sync_redis: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A worker 120 s ahead computes a 0.05 s retry backoff: the retry runs within seconds, as
    the server's clock reckons it, not two minutes later."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import time\n_real = time.time\ntime.time = lambda: _real() + 120\n"
    )
    spawn_worker(WORKER_WORKFLOWS=FLOWS, PYTHONPATH=f"{site}:{ROOT}")
    with client_for(redis_url) as client:
        client.enqueue("fail_once", {"tag": "ahead"}, id="r")
        assert client.result("r", timeout=15) == "ok"
    first, second = runs(sync_redis, "ahead")
    assert float(second["t"]) - float(first["t"]) < 5  # type: ignore[arg-type]


class _Clock:
    """Stands in for the `time` module of the producer: its clock is off by `skew` seconds."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def time(self) -> float:
        return time.time() + self.skew


def _fill(client: SyncClient, blob: str) -> int:
    """Enqueue until Redis refuses for lack of memory; how many were accepted."""
    for n in range(2000):
        try:
            client.enqueue("noop", {"blob": blob}, id=f"j{n}")
        except redis.exceptions.OutOfMemoryError:
            return n
    raise AssertionError("Redis never ran out of memory")


def _server_time(client: redis.Redis) -> float:
    secs, micros = client.time()
    return float(secs) + micros / 1e6
