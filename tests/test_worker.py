"""Worker behaviour in-process against a real Redis: claiming, concurrency, outcomes, status."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.conftest import WorkerFactory, make_settings, wait_for
from workflow_worker.app import Worker
from workflow_worker.connection import connect
from workflow_worker.engine.chores import Chores
from workflow_worker.engine.consumer import Consumer
from workflow_worker.engine.execution import Executor
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import Client, JobFailed, JobSpec
from workflow_worker.workflows.context import JobContext

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)


class Gate:
    """A workflow that blocks until released and tracks how many run at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.peak = 0
        self.order: list[Any] = []

    async def __call__(self, payload: dict[str, Any], ctx: JobContext) -> Any:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.order.append(payload.get("n"))
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return payload.get("n")


async def test_minimal_raw_lpush_job_runs(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """A producer that knows nothing of this package can LPUSH the minimal JSON form."""
    seen: list[dict[str, Any]] = []

    async def record(payload: dict[str, Any], ctx: JobContext) -> str:
        seen.append(payload)
        return "ok"

    await start_worker(registry={"record": record})
    await aredis.lpush(Q, json.dumps({"workflow": "record", "payload": {"x": 1}}))
    await wait_for(lambda: seen)
    assert seen == [{"x": 1}]
    await wait_for(lambda: _empty(aredis))


async def _empty(aredis: aioredis.Redis) -> bool:
    return await aredis.llen(Q) == 0 and await aredis.hlen(KEYS.processing) == 0


async def test_concurrency_cap_and_no_claim_without_a_free_slot(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """With more jobs than slots, exactly N run, N are in flight, and the rest stay in the list."""
    gate = Gate()
    await start_worker(registry={"gate": gate}, concurrency=4)
    await aredis.lpush(
        Q, *[json.dumps({"workflow": "gate", "payload": {"n": i}}) for i in range(10)]
    )
    await wait_for(lambda: gate.running == 4)
    await asyncio.sleep(0.3)
    assert gate.running == 4
    assert await aredis.hlen(KEYS.processing) == 4
    assert await aredis.llen(Q) == 6
    gate.release.set()
    await wait_for(lambda: _empty(aredis))
    assert gate.peak == 4
    assert sorted(gate.order) == list(range(10))


async def test_fifo_order_with_one_slot(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """Jobs start in the order they were pushed."""
    order: list[int] = []

    async def note(payload: dict[str, Any], ctx: JobContext) -> None:
        order.append(payload["n"])

    for i in range(20):
        await aredis.lpush(Q, json.dumps({"workflow": "note", "payload": {"n": i}}))
    await start_worker(registry={"note": note}, concurrency=1)
    await wait_for(lambda: len(order) == 20)
    assert order == list(range(20))


async def test_results_status_and_client_api(start_worker: WorkerFactory, redis_url: str) -> None:
    """The client enqueues (single and bulk), and status/result report what happened."""
    await start_worker()
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("echo", {"hello": "world"})
        assert await client.result(job_id, timeout=10) == {"hello": "world"}
        record = await client.status(job_id)
        assert record is not None
        assert record["state"] == "success"
        assert record["attempt"] == 1
        assert record["worker"]
        assert record["duration"] >= 0
        ids = await client.enqueue_many([JobSpec("echo", {"n": i}) for i in range(50)])
        results = await asyncio.gather(*[client.result(i, timeout=10) for i in ids])
        assert results == [{"n": i} for i in range(50)]


async def test_exception_is_retried_with_backoff_then_dead_lettered(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """A failing workflow is retried up to max_attempts, recorded, then dead-lettered."""
    attempts: list[int] = []

    async def flaky(payload: dict[str, Any], ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        raise ValueError("upstream said no")

    worker = await start_worker(registry={"flaky": flaky})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flaky", {}, max_attempts=3)
        with pytest.raises(JobFailed) as info:
            await client.result(job_id, timeout=10)
    record = info.value.record
    assert record["state"] == "failure"
    assert "ValueError: upstream said no" in record["error"]
    assert "Traceback" in record["traceback"]
    assert attempts == [1, 2, 3]
    entry = json.loads(_must(await aredis.lindex(KEYS.dead, 0)))
    assert entry["kind"] == "failed"
    assert "failed after 3 of 3 attempts" in entry["reason"]
    assert json.loads(entry["job"])["id"] == job_id
    total = worker.worker.metrics.jobs
    assert total.labels(Q, "flaky", "retried")._value.get() == 2
    assert total.labels(Q, "flaky", "failure")._value.get() == 1


async def test_poison_messages_go_to_dead_letter_and_the_worker_carries_on(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """Invalid JSON, non-objects and unknown workflows are dead-lettered with a reason."""
    await start_worker()
    bad = [b"\xff", b"not json", b"[1,2]", b'{"payload": {}}', b'{"workflow": "nope"}']
    await aredis.lpush(Q, *bad, b'{"workflow": "echo", "payload": {"ok": true}}')
    await wait_for(lambda: aredis.llen(KEYS.dead), timeout=10)
    await wait_for(lambda: _dead_count(aredis, 5))
    entries = [json.loads(e) for e in await aredis.lrange(KEYS.dead, 0, -1)]
    reasons = " | ".join(e["reason"] for e in entries)
    for needle in (
        "UTF-8",
        "not valid JSON",
        "not a JSON object",
        "'workflow'",
        "unknown workflow",
    ):
        assert needle in reasons
    assert {e["job"] for e in entries} >= {"not json", "[1,2]", '{"workflow": "nope"}'}
    await wait_for(lambda: _empty(aredis))


async def _dead_count(aredis: aioredis.Redis, n: int) -> bool:
    return int(await aredis.llen(KEYS.dead)) == n


async def test_timeout_cancels_and_counts_a_failure(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """An attempt past its timeout is cancelled, recorded as a failure and retried."""
    calls: list[int] = []

    async def slow(payload: dict[str, Any], ctx: JobContext) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(30)
        return "second try"

    await start_worker(registry={"slow": slow})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("slow", {}, timeout=0.3, max_attempts=2)
        assert await client.result(job_id, timeout=10) == "second try"
    assert calls == [1, 2]


async def test_benchmark_mode_sleeps_instead_of_running(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """In benchmark mode every job sleeps within the range, whatever its workflow."""
    ran: list[str] = []

    async def real(payload: dict[str, Any], ctx: JobContext) -> None:
        ran.append("real")

    worker = await start_worker(
        registry={"real": real},
        benchmark_mode=True,
        benchmark_min_seconds=0.05,
        benchmark_max_seconds=0.1,
    )
    async with Client(make_settings(redis_url)) as client:
        ids = await client.enqueue_many([JobSpec("anything", {}) for _ in range(5)])
        results = [await client.result(i, timeout=10) for i in ids]
    assert ran == []
    assert all(0.05 <= r["slept"] <= 0.1 for r in results)
    assert worker.worker.metrics.jobs.labels(Q, "anything", "success")._value.get() == 5


async def test_lease_loss_drops_local_jobs_and_recovers(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """When its lease is taken away, the worker stops its jobs, re-registers and keeps going."""
    gate = Gate()
    worker = await start_worker(registry={"gate": gate}, concurrency=2, lease_seconds=1.0)
    await aredis.lpush(Q, json.dumps({"workflow": "gate", "payload": {"n": 1}}))
    await wait_for(lambda: gate.running == 1)
    members = await aredis.zrange(KEYS.workers, 0, -1)
    old_id = members[0]
    assert isinstance(old_id, bytes)
    # What another worker's reaper does to a worker it presumes dead:
    await aredis.zrem(KEYS.workers, old_id)
    await wait_for(lambda: gate.running == 0, timeout=5)
    ids = await wait_for(lambda: aredis.zrange(KEYS.workers, 0, -1), timeout=5)
    assert old_id not in ids
    assert worker.worker.metrics.jobs.labels(Q, "gate", "success")._value.get() == 0


def _must(value: bytes | str | None) -> bytes | str:
    assert value is not None
    return value


async def test_a_stray_claim_of_a_live_worker_is_requeued(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """A claim the worker holds but does not run (a lost acknowledgement) goes back and runs."""
    seen: list[str] = []

    async def record(payload: dict[str, Any], ctx: JobContext) -> None:
        seen.append(ctx.job_id)

    running = await start_worker(registry={"record": record}, lease_seconds=1.0)
    worker_id = (await aredis.zrange(KEYS.workers, 0, -1))[0]
    assert isinstance(worker_id, bytes)
    await aredis.lpush(Q, json.dumps({"workflow": "record", "id": "first"}))
    await wait_for(lambda: seen == ["first"])
    await wait_for(lambda: _empty(aredis))
    # What a failover leaves behind when the acknowledgement of the first claim went to the
    # demoted primary: the claim is back, though this worker finished its job.
    token = worker_id.decode() + "|1:1"
    await aredis.hset(KEYS.processing, token, json.dumps({"workflow": "record", "id": "stray"}))
    await wait_for(lambda: seen == ["first", "stray"], timeout=15)
    await wait_for(lambda: _empty(aredis), timeout=5)
    requeued = running.worker.metrics.requeued.labels(Q, "stray_claim")._value.get()
    assert requeued == 1


async def test_the_audit_leaves_a_claim_whose_reply_is_on_its_way(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    """A claim already in Redis but not yet seen by its worker is not requeued as stray."""
    settings = make_settings(redis_url)
    worker = Worker(settings, registry={})
    client = connect(settings)
    lane = worker._lane(client, Q)
    async with aiohttp.ClientSession() as http:
        executor = Executor(settings, worker.metrics, {}, http, lambda: consumer.worker_id)
        consumer = Consumer(settings, [lane], worker.metrics, executor)
        chores = Chores(settings, consumer, worker.metrics)
        try:
            await chores.register()
            await aredis.lpush(Q, json.dumps({"workflow": "record", "id": "in-flight"}))
            # The claim script ran, but the consumer has not processed its reply yet.
            claimed = await lane.queue.claim(
                consumer.worker_id, 1, consumer.next_call, settings.claim_limit
            )
            assert claimed is not None
            assert len(claimed) == 1
            await chores.audit()
            assert await aredis.hexists(KEYS.processing, claimed[0].token)
            assert await aredis.llen(Q) == 0
        finally:
            await client.aclose()
