"""Redis Sentinel: a primary, a replica and two sentinels on free ports; the primary is switched
mid-run with SENTINEL FAILOVER, and the workers and the producer follow it."""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import WorkerProcess, wait_until, worker_env
from tests.servers import RedisServer, free_port, server_binary
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import JobSpec, SyncClient
from workflow_worker.settings import Settings

MASTER = "mymaster"
Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)


def _sentinel_command(conf: Path) -> list[str]:
    """Debian's redis-sentinel when installed, else the test server binary in sentinel mode."""
    found = shutil.which("redis-sentinel")
    return [found, str(conf)] if found else [server_binary(), str(conf), "--sentinel"]


class Sentinel:
    """One sentinel process (`redis-server <conf> --sentinel`) watching MASTER."""

    def __init__(self, folder: Path, primary_port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = folder / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 2000\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
        )
        self.log = folder / "sentinel.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                _sentinel_command(self.conf),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def master_port(self) -> int:
        with self.client() as c:
            return int(c.sentinel_get_master_addr_by_name(MASTER)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@dataclass
class SentinelStack:
    primary: RedisServer
    replica: RedisServer
    sentinels: list[Sentinel]
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.sentinels[0].port}/0"

    def env(self, **more: str) -> dict[str, str]:
        return worker_env(self.url, REDIS_MODE="sentinel", REDIS_SENTINEL_MASTER=MASTER, **more)

    def server_on(self, port: int) -> RedisServer:
        return self.primary if self.primary.port == port else self.replica


def _replica_known(sentinel: Sentinel) -> bool:
    with contextlib.suppress(redis.RedisError, OSError), sentinel.client() as c:
        replicas = c.execute_command("SENTINEL", "REPLICAS", MASTER)
        return any(
            "s_down" not in r.get("flags", "") and r.get("master-link-status") == "ok"
            for r in replicas
        )
    return False


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[SentinelStack]:
    """Primary (appendonly), replica, two sentinels that both see the replica."""
    primary = RedisServer(tmp_path / "primary", appendonly=True)
    primary.start()
    replica = RedisServer(
        tmp_path / "replica",
        appendonly=True,
        extra_args=("--replicaof", "127.0.0.1", str(primary.port)),
    )
    replica.start()
    sentinels: list[Sentinel] = []
    result = SentinelStack(primary, replica, sentinels)
    try:
        sentinels += [Sentinel(tmp_path / f"sentinel{i}", primary.port) for i in range(2)]
        for s in sentinels:
            wait_until(functools.partial(_replica_known, s), timeout=30, interval=0.2)
        yield result
    finally:
        for w in result.workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
        for s in sentinels:
            s.stop()
        replica.stop()
        primary.stop()


def _states(server: RedisServer, ids: list[str]) -> dict[str, str | None]:
    with redis.Redis(port=server.port, decode_responses=True) as c, c.pipeline() as pipe:
        for job_id in ids:
            pipe.hget(KEYS.job(job_id), "state")
        return dict(zip(ids, pipe.execute(), strict=True))


def _enqueue(settings: Settings, ids: list[str], seconds: float) -> None:
    """Enqueue through Sentinel, retrying a batch only if its first record is not there."""
    deadline = time.monotonic() + 30
    with SyncClient(settings) as client:
        while True:
            try:
                client.enqueue_many([JobSpec("sleep", {"seconds": seconds}, id=i) for i in ids])
                return
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                with contextlib.suppress(redis.RedisError, OSError):
                    if client.redis.exists(KEYS.job(ids[0])):
                        return


def _role(server: RedisServer) -> str:
    with contextlib.suppress(redis.RedisError, OSError), redis.Redis(port=server.port) as c:
        return str(c.execute_command("ROLE")[0].decode())
    return "unreachable"


def _stuck_report(server: RedisServer, ids: list[str]) -> str:
    states = _states(server, ids)
    unfinished = {j: s for j, s in states.items() if s != "success"}
    with redis.Redis(port=server.port, decode_responses=True) as c:
        claims = c.hkeys(KEYS.processing)
        leases = c.zrange(KEYS.workers, 0, -1, withscores=True)
        queued = c.llen(Q)
    return (
        f"{len(unfinished)} kept jobs never finished: {unfinished}; on the new primary the"
        f" processing hash holds claims {claims}, the queue {queued} jobs, leases {leases}"
    )


def _ready(handle: WorkerProcess) -> bool:
    return handle.get("/readyz")[0] == 200


def _duplicates(workers: list[WorkerProcess]) -> int:
    total = 0.0
    for handle in workers:
        for line in handle.get("/metrics")[1].splitlines():
            if line.startswith("workflow_duplicate_completions_total{"):
                total += float(line.rsplit(" ", 1)[1])
    return int(total)


def test_workers_follow_a_sentinel_failover_and_finish_every_kept_job(
    stack: SentinelStack, tmp_path: Path
) -> None:
    """After SENTINEL FAILOVER mid-run the workers and the producer move to the new primary; every
    job the new primary holds finishes, and nothing stays claimed there."""
    env = stack.env(WORKER_CONCURRENCY="4", WORKER_LEASE_SECONDS="3")
    for n in range(2):
        handle = WorkerProcess(env, tmp_path / f"worker-{n}.log")
        stack.workers.append(handle)
        handle.wait_ready()
    settings = Settings.from_env(env)
    before = [f"b{n}" for n in range(80)]
    _enqueue(settings, before, 0.5)
    old_port = stack.sentinels[0].master_port()
    old = stack.server_on(old_port)
    wait_until(lambda: list(_states(old, before).values()).count("success") >= 10, timeout=30)
    switched = time.monotonic()
    with stack.sentinels[0].client() as c:
        assert c.execute_command("SENTINEL", "FAILOVER", MASTER) == "OK"
    new = stack.replica if old is stack.primary else stack.primary
    # The failover is over when the old primary has been turned into a replica of the new one.
    wait_until(lambda: _role(old) == "slave" and _role(new) == "master", timeout=60, interval=0.2)
    demoted = time.monotonic() - switched
    after = [f"a{n}" for n in range(20)]
    _enqueue(settings, after, 0.1)
    kept = [j for j, s in _states(new, before + after).items() if s is not None]
    try:
        wait_until(
            lambda: all(s == "success" for s in _states(new, kept).values()),
            timeout=60,
            interval=0.2,
        )
    except AssertionError:
        raise AssertionError(_stuck_report(new, kept)) from None
    with redis.Redis(port=new.port) as c:
        assert c.hlen(KEYS.processing) == 0
        assert c.llen(Q) == 0
    for handle in stack.workers:
        assert handle.proc.poll() is None
        wait_until(functools.partial(_ready, handle), timeout=30)
    print(
        f"\nfailover: {len(before) + len(after)} enqueued, {len(kept)} kept by the new primary,"
        f" old primary demoted after {demoted:.1f}s, duplicates {_duplicates(stack.workers)}"
    )
    assert set(after) <= set(kept), "jobs enqueued after the failover all reached the new primary"
