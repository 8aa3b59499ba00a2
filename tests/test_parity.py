"""Celery parity: delayed jobs, unique jobs, cancellation and dead-letter tools, races included."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import WorkerFactory, make_settings, wait_for
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import Client, DuplicateJob, JobSpec
from workflow_worker.workflows.context import JobContext

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)


class Recorder:
    """Counts executions per job id; `block` makes runs wait until released."""

    def __init__(self, block: bool = False) -> None:
        self.started: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.release = asyncio.Event()
        if not block:
            self.release.set()

    async def __call__(self, payload: dict[str, Any], ctx: JobContext) -> str:
        self.started[ctx.job_id] += 1
        await self.release.wait()
        self.finished[ctx.job_id] += 1
        return ctx.job_id


async def test_delayed_job_waits_outside_the_queue_then_runs(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """A delayed job is not in the queue list (KEDA does not see it) until due, then runs."""
    rec = Recorder()
    await start_worker(registry={"rec": rec})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("rec", {}, id="later", delay=0.8)
        record = await client.status(job_id)
        assert record is not None
        assert record["state"] == "delayed"
        assert await aredis.llen(Q) == 0
        assert await aredis.zcard(KEYS.delayed) == 1
        await asyncio.sleep(0.3)
        assert rec.started["later"] == 0
        assert await client.result(job_id, timeout=10) == "later"
        at_id = await client.enqueue(
            "rec", {}, id="at", at=datetime.now(UTC) + timedelta(seconds=0.3)
        )
        assert await client.result(at_id, timeout=10) == "at"


async def test_two_workers_promote_each_due_job_exactly_once(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """With two workers promoting the same due jobs, every job runs exactly once."""
    rec = Recorder()
    await start_worker(registry={"rec": rec}, concurrency=20)
    await start_worker(registry={"rec": rec}, concurrency=20)
    async with Client(make_settings(redis_url)) as client:
        due = time.time() + 0.5
        ids = await client.enqueue_many(
            [JobSpec("rec", {}, id=f"d{i}", at=due) for i in range(150)]
        )
        for job_id in ids:
            await client.result(job_id, timeout=20)
    assert set(rec.finished) == set(ids)
    assert max(rec.started.values()) == 1


async def test_unique_by_id_and_key_while_queued_or_running(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A second enqueue with the same id or key does nothing and says so, until the first ends."""
    rec = Recorder(block=True)
    await start_worker(registry={"rec": rec})
    async with Client(make_settings(redis_url)) as client:
        await client.enqueue("rec", {}, id="once")
        with pytest.raises(DuplicateJob) as info:
            await client.enqueue("rec", {}, id="once")
        assert info.value.job_id == "once"
        first = await client.enqueue("rec", {}, unique_key="report:42")
        await wait_for(lambda: rec.started[first] == 1)
        with pytest.raises(DuplicateJob) as info:
            await client.enqueue("rec", {}, unique_key="report:42")
        assert info.value.job_id == first
        bulk = await client.submit([JobSpec("rec", {}, unique_key="report:42"), JobSpec("rec")])
        assert (bulk[0].id, bulk[0].created, bulk[1].created) == (first, False, True)
        rec.release.set()
        await client.result(first, timeout=10)
        again = await client.enqueue("rec", {}, unique_key="report:42")
        assert again != first
        await client.result(again, timeout=10)
        assert await client.enqueue("rec", {}, id="once") == "once"


async def test_cancel_queued_and_delayed_jobs_never_run(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """Cancelled waiting jobs are recorded as cancelled and dropped when claimed."""
    rec = Recorder()
    async with Client(make_settings(redis_url)) as client:
        queued = await client.enqueue("rec", {}, id="q1")
        delayed = await client.enqueue("rec", {}, id="d1", delay=0.3)
        assert await client.cancel(queued) == "cancelled"
        assert await client.cancel(delayed) == "cancelled"
        assert await client.cancel("nope") == "unknown"
        running = await start_worker(registry={"rec": rec})
        marker = await client.enqueue("rec", {}, id="after")
        await client.result(marker, timeout=10)
        await asyncio.sleep(0.6)
        for job_id in (queued, delayed):
            record = await client.status(job_id)
            assert record is not None
            assert record["state"] == "cancelled"
        assert rec.started[queued] == rec.started[delayed] == 0
        jobs = running.worker.metrics.jobs
        await wait_for(lambda: jobs.labels(Q, "rec", "cancelled")._value.get() == 2, timeout=5)
        assert await client.cancel(marker) == "success"


async def test_cancel_running_job_within_a_second(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A running job's task is cancelled within a second and recorded as cancelled."""
    rec = Recorder(block=True)
    running = await start_worker(registry={"rec": rec})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("rec", {}, id="long")
        await wait_for(lambda: rec.started[job_id] == 1)
        asked = time.monotonic()
        assert await client.cancel(job_id) == "cancelling"
        await wait_for(lambda: _state_is(client, job_id, "cancelled"), timeout=5)
        assert time.monotonic() - asked < 1.5
    assert rec.finished[job_id] == 0
    assert running.worker.metrics.jobs.labels(Q, "rec", "cancelled")._value.get() == 1


async def _state_is(client: Client, job_id: str, state: str) -> bool:
    record = await client.status(job_id)
    return record is not None and record.get("state") == state


async def test_cancel_just_as_the_job_starts(start_worker: WorkerFactory, redis_url: str) -> None:
    """Cancelling right after enqueue, while a worker is claiming it, always ends cancelled."""
    rec = Recorder(block=True)
    await start_worker(registry={"rec": rec}, concurrency=50)
    async with Client(make_settings(redis_url)) as client:
        ids = []
        for i in range(40):
            job_id = await client.enqueue("rec", {}, id=f"race{i}")
            if i % 2:
                await asyncio.sleep(0.002 * (i % 5))
            assert await client.cancel(job_id) in ("cancelled", "cancelling")
            ids.append(job_id)
        for job_id in ids:
            await wait_for(partial(_state_is, client, job_id, "cancelled"), timeout=5)
    assert sum(rec.finished.values()) == 0


async def test_dead_letter_tools_list_requeue_and_purge(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """Dead letters can be listed, inspected, requeued with fresh attempts, and purged."""
    calls: Counter[str] = Counter()

    async def flaky(payload: dict[str, Any], ctx: JobContext) -> str:
        calls[ctx.job_id] += 1
        if calls[ctx.job_id] <= 2:
            raise RuntimeError(f"failure {calls[ctx.job_id]}")
        return "finally"

    await start_worker(registry={"flaky": flaky})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("flaky", {}, id="f1", max_attempts=2)
        await wait_for(lambda: _state_is(client, job_id, "failure"), timeout=10)
        entries = await client.dead_letters()
        assert len(entries) == 1
        assert "failed after 2 of 2 attempts" in entries[0].reason
        assert json.loads(entries[0].job_text)["id"] == job_id
        assert await client.requeue_dead(0)
        assert await client.result(job_id, timeout=10) == "finally"
        assert await client.dead_letters() == []
        await client.redis.lpush(KEYS.queue, b"garbage-1", b"garbage-2")
        await wait_for(lambda: _dead_len(client, 2), timeout=10)
        # The worker dead-letters them again at once: each is requeued once, not in a loop.
        assert await client.requeue_all_dead() == 2
        await wait_for(lambda: _dead_len(client, 2), timeout=10)
        await asyncio.sleep(0.2)
        assert len(await client.dead_letters()) == 2
        assert await client.purge_dead() == 2
        assert await client.dead_letters() == []
        assert not await client.requeue_dead(0)


async def _dead_len(client: Client, n: int) -> bool:
    return len(await client.dead_letters()) == n


async def test_events_reach_idle_workers_without_polling(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """With a 30 s lease (fallback polls every 10 s) cancels and due jobs still act at once."""
    rec = Recorder(block=True)
    await start_worker(registry={"rec": rec}, lease_seconds=30.0)
    async with Client(make_settings(redis_url)) as client:
        await asyncio.sleep(0.5)  # let the worker's promoter settle into its long sleep
        enqueued = time.monotonic()
        later = await client.enqueue("rec", {}, id="soon", delay=0.5)
        await wait_for(lambda: rec.started[later] == 1, timeout=5)
        assert time.monotonic() - enqueued < 2.0, "the promoter was woken by the notice"
        asked = time.monotonic()
        assert await client.cancel(later) == "cancelling"
        await wait_for(partial(_state_is, client, later, "cancelled"), timeout=5)
        assert time.monotonic() - asked < 1.0, "the cancel request was pushed, not polled"
