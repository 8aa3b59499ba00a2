"""Durable steps and composition on a real three-node Redis Cluster: every key a step, a child
job, a group or a chain touches is in its queue's hash slot, so their scripts run there as on one
server."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from tests.conftest import make_settings
from tests.servers import free_port, server_binary
from workflow_worker.app import Worker
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import Client
from workflow_worker.producer.requests import JobSpec
from workflow_worker.workflows.context import JobContext

KEYS = QueueKeys.for_queue("workflow:queue")


@pytest.fixture
def cluster_url(tmp_path: Path) -> Iterator[str]:
    """Three masters on free ports, the 16384 slots split between them; stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    nodes = [(free_port(), free_port()) for _ in range(3)]
    try:
        for port, bus in nodes:
            folder = tmp_path / str(port)
            folder.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        server_binary(),
                        *("--port", str(port), "--cluster-port", str(bus)),
                        *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                        *("--save", "", "--appendonly", "no", "--dir", str(folder)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        clients = [redis.Redis(port=port) for port, _ in nodes]
        _wait(lambda: all(_answers(c) for c in clients), "nodes did not start")
        bounds = [0, 5461, 10923, 16384]
        for n, client in enumerate(clients):
            _command(client, "CLUSTER", "ADDSLOTSRANGE", bounds[n], bounds[n + 1] - 1)
            if n:
                _command(clients[0], "CLUSTER", "MEET", "127.0.0.1", nodes[n][0], nodes[n][1])
        _wait(lambda: all(_state_ok(c) for c in clients), "cluster not ok")
        for client in clients:
            client.close()
        yield f"redis://127.0.0.1:{nodes[0][0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def _command(client: redis.Redis, *args: object) -> object:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


def _state_ok(client: redis.Redis) -> bool:
    info = _command(client, "CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text and "cluster_known_nodes:3" in text


def _wait(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


async def test_steps_and_a_sleep_run_on_redis_cluster(cluster_url: str) -> None:
    """On Cluster, a workflow that records a step, sleeps in the delayed set, fails once and
    resumes replays its recorded step and finishes; its steps hash sits in its job's slot."""
    runs: list[str] = []

    async def first() -> str:
        runs.append("first")
        return "a"

    async def flow(payload: dict[str, Any], ctx: JobContext) -> str:
        a = await ctx.step("first", first)
        await ctx.sleep(1.5)
        if ctx.attempt == 1:
            raise RuntimeError("again")
        return str(a)

    settings = make_settings(cluster_url, redis_mode="cluster")
    worker = Worker(settings, registry={"flow": flow})
    ready = asyncio.Event()
    task = asyncio.create_task(worker.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        async with Client(settings) as client:
            job_id = await client.enqueue("flow", {}, max_attempts=2)
            assert await client.result(job_id, timeout=30) == "a"
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 60)
    assert runs == ["first"]
    with RedisCluster.from_url(cluster_url) as sync:
        assert sync.keyslot(KEYS.steps(job_id)) == sync.keyslot(KEYS.job(job_id))
        assert sync.hget(KEYS.steps(job_id), "first#1") == b'"a"'


async def test_children_groups_and_chains_run_on_redis_cluster(cluster_url: str) -> None:
    """On Cluster, a workflow's child jobs, a group with its callback and a chain run to their
    end: every key their scripts touch is in the queue's slot."""

    async def echo(payload: dict[str, Any], ctx: JobContext) -> Any:
        return payload.get("n", payload.get("previous", {}).get("result"))

    async def parent(payload: dict[str, Any], ctx: JobContext) -> list[str]:
        return [await ctx.enqueue("echo", {"n": n}) for n in range(2)]

    async def gather(payload: dict[str, Any], ctx: JobContext) -> list[Any]:
        return [outcome["result"] for outcome in payload["results"]]

    settings = make_settings(cluster_url, redis_mode="cluster")
    worker = Worker(settings, registry={"echo": echo, "parent": parent, "gather": gather})
    ready = asyncio.Event()
    task = asyncio.create_task(worker.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        async with Client(settings) as client:
            parent_id = await client.enqueue("parent", {})
            children = await client.result(parent_id, timeout=30)
            assert [await client.result(c, timeout=30) for c in children] == [0, 1]
            assert (await client.status(parent_id) or {})["children"] == children
            gid = await client.group(
                [JobSpec("echo", {"n": n}) for n in range(5)], then=JobSpec("gather")
            )
            assert await client.result(gid, timeout=30) == [0, 1, 2, 3, 4]
            ids = await client.chain(JobSpec("echo", {"n": 7}) | JobSpec("echo"))
            assert await client.result(ids[-1], timeout=30) == 7
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 60)
    with RedisCluster.from_url(cluster_url) as sync:
        assert sync.keyslot(KEYS.group(gid)) == sync.keyslot(KEYS.queue)
