"""Composition with real worker processes that are killed (SIGKILL) mid-way: a group's callback
still runs exactly once with every result, and a re-delivered parent creates nothing twice."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable

import redis

from tests.compose_flows import RUNS
from tests.conftest import WorkerProcess, make_settings, run_cli, wait_until
from workflow_worker.producer.client import JobSpec, SyncClient

FLOWS = {"WORKER_WORKFLOWS": "tests.compose_flows:WORKFLOWS"}


def _runs(client: redis.Redis, tag: str) -> list[str]:
    return [json.loads(line)["job"] for line in client.lrange(f"{RUNS}:{tag}", 0, -1)]


def test_a_group_survives_a_worker_killed_between_members(
    spawn_worker: Callable[..., WorkerProcess], redis_url: str, sync_redis: redis.Redis
) -> None:
    """A worker is killed after some members ended and while others run; another worker
    takes them back, and the callback runs exactly once with all 30 results in order."""
    with SyncClient(make_settings(redis_url)) as client:
        members = [JobSpec("double", {"n": n, "seconds": 0.2, "tag": "m"}) for n in range(30)]
        gid = client.group(members, then=JobSpec("collect", {"tag": "cb"}))
        first = spawn_worker(WORKER_CONCURRENCY="4", **FLOWS)
        wait_until(lambda: len(_runs(sync_redis, "m")) >= 8, timeout=30)
        first.signal(signal.SIGKILL)
        first.wait()
        done_at_kill = int(sync_redis.hget(f"{{workflow:queue}}:job:{gid}", "group_done") or 0)
        assert 0 < done_at_kill < 30
        spawn_worker(WORKER_CONCURRENCY="8", **FLOWS)
        answer = client.result(gid, timeout=60)
        assert [r["result"] for r in answer["results"]] == [2 * n for n in range(30)]
        record = client.status(gid)
        assert record is not None
        assert (record["group_done"], record["group_failed"]) == (30, 0)
    assert _runs(sync_redis, "cb") == [gid]
    assert sync_redis.llen("compose:callback:cb") == 1
    # Every member ran at least once (at-least-once: the killed ones ran again).
    assert set(_runs(sync_redis, "m")) == {f"{gid}.{n}" for n in range(30)}


def test_a_parent_killed_after_creating_children_creates_them_once(
    spawn_worker: Callable[..., WorkerProcess], redis_url: str, sync_redis: redis.Redis
) -> None:
    """A workflow enqueues children and a group, then its worker is killed; re-delivered to
    another worker, it gets the same ids back, nothing it created exists twice, and
    `workflow-worker job` shows the links between parent and children."""
    with SyncClient(make_settings(redis_url)) as client:
        first = spawn_worker(**FLOWS)
        pid = client.enqueue("parent", {"tag": "k", "crash_first": True, "slow": 1}, id="K")
        wait_until(lambda: first.proc.poll() is not None, timeout=30)
        spawn_worker(**FLOWS)
        ids = client.result(pid, timeout=60)
        assert ids == ["K.child-0", "K.second", "K.group-0"]
        client.result("K.group-0", timeout=60)
        record = client.status(pid)
        assert record is not None
        assert record["children"] == ids
    ran = Counter(_runs(sync_redis, "k"))
    expected = {"K", "K.child-0", "K.second", "K.group-0", *(f"K.group-0.{n}" for n in range(3))}
    assert set(ran) == expected
    assert ran["K"] == 2
    assert ran["K.group-0"] == 1
    assert sync_redis.llen("compose:callback:k") == 1
    shown = run_cli(redis_url, "job", "K", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["children"] == ids
    member = json.loads(run_cli(redis_url, "job", "K.group-0.1", "--json").stdout)
    assert (member["parent"], member["group"]) == ("K", "K.group-0")
