"""Several queues in priority order, the anti-starvation rule, and fleet-wide rate limits."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis.asyncio as aioredis

from tests.conftest import WorkerFactory, make_settings, wait_for
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.limits import parse_rate_limits
from workflow_worker.producer.client import Client, JobSpec
from workflow_worker.workflows.context import JobContext


class Order:
    """Records (queue, n) in start order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.times: list[float] = []

    async def __call__(self, payload: dict[str, Any], ctx: JobContext) -> None:
        self.seen.append((ctx.queue, int(payload["n"])))
        self.times.append(time.monotonic())
        await asyncio.sleep(0.005)


async def push(aredis: aioredis.Redis, queue: str, count: int) -> None:
    for n in range(count):
        await aredis.lpush(queue, json.dumps({"workflow": "order", "payload": {"n": n}}))


async def test_higher_queues_are_served_first(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """With strict priority, every high job starts before default, and default before low."""
    order = Order()
    for queue in ("low", "default", "high"):
        await push(aredis, queue, 5)
    await start_worker(
        registry={"order": order},
        queue="high",
        queues=("high", "default", "low"),
        concurrency=1,
        queue_fairness=0,
    )
    await wait_for(lambda: len(order.seen) == 15)
    assert [q for q, _ in order.seen] == ["high"] * 5 + ["default"] * 5 + ["low"] * 5
    assert [n for q, n in order.seen if q == "low"] == list(range(5)), "FIFO within a queue"
    for queue in ("high", "default", "low"):
        assert await aredis.llen(queue) == 0
    await wait_for(lambda: _drained(aredis, ("high", "default", "low")))


async def _drained(aredis: aioredis.Redis, queues: tuple[str, ...]) -> bool:
    for queue in queues:
        if int(await aredis.hlen(QueueKeys.for_queue(queue).processing)):
            return False
    return True


async def test_low_queue_is_not_starved(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """With fairness N, a low queue gets claims while the high queue is still busy."""
    order = Order()
    await push(aredis, "high", 40)
    await push(aredis, "low", 4)
    await start_worker(
        registry={"order": order},
        queue="high",
        queues=("high", "low"),
        concurrency=1,
        queue_fairness=4,
    )
    await wait_for(lambda: len(order.seen) == 44, timeout=20)
    first_20 = [q for q, _ in order.seen[:20]]
    assert first_20.count("low") >= 3, first_20


async def test_each_queue_stays_a_plain_list_for_producers(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A client per queue enqueues onto that queue's own list and status records."""
    order = Order()
    await start_worker(
        registry={"order": order}, queue="high", queues=("high", "low"), concurrency=4
    )
    settings = make_settings(redis_url, queue="high", queues=("high", "low"))
    async with Client(settings, queue="low") as low, Client(settings) as high:
        a = await low.enqueue("order", {"n": 1})
        b = await high.enqueue("order", {"n": 2})
        await low.result(a, timeout=10)
        await high.result(b, timeout=10)
        record = await low.status(a)
        assert record is not None
        assert record["queue"] == "low"
    assert sorted(order.seen) == [("high", 2), ("low", 1)]


async def test_rate_limit_is_shared_by_two_workers(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """Two workers together never start more than N jobs of a limited workflow per second."""
    order = Order()
    limits = parse_rate_limits('{"order": {"per_second": 4}}')
    for _ in range(2):
        await start_worker(registry={"order": order}, rate_limits=limits, concurrency=10)
    async with Client(make_settings(redis_url)) as client:
        ids = await client.enqueue_many([JobSpec("order", {"n": i}) for i in range(14)])
        for job_id in ids:
            await client.result(job_id, timeout=30)
    times = sorted(order.times)
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t - start < 0.95]
        assert len(in_window) <= 4, f"{len(in_window)} starts within one second"
    assert times[-1] - times[0] >= 2.5, "14 starts at 4 per second take at least 3 windows"


async def test_waiting_for_a_limit_does_not_hold_a_slot(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """Jobs waiting for their limit sit in the delayed set while other jobs use the slots."""
    order = Order()
    limits = parse_rate_limits('{"limited": {"per_minute": 1}}')
    running = await start_worker(
        registry={"limited": order, "order": order}, rate_limits=limits, concurrency=2
    )
    async with Client(make_settings(redis_url)) as client:
        held_back = await client.enqueue_many([JobSpec("limited", {"n": i}) for i in range(3)])
        free = await client.enqueue_many([JobSpec("order", {"n": 10 + i}) for i in range(6)])
        for job_id in free:
            await client.result(job_id, timeout=10)
        done = [await client.status(i) for i in held_back]
    states = sorted(r["state"] for r in done if r is not None)
    assert states == ["delayed", "delayed", "success"]
    assert await aredis.zcard(QueueKeys.for_queue("workflow:queue").delayed) == 2
    counter = running.worker.metrics.rate_limited.labels("workflow:queue", "limited")
    assert counter._value.get() >= 2
