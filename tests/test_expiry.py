"""`enqueue(..., expires=...)`: a job not started by its deadline ends as `expired`, never run,
its lock freed and counted; a relative deadline is on the Redis server's clock."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from tests.conftest import WorkerFactory, make_settings, run_cli, wait_for
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer import requests
from workflow_worker.producer.client import Client, JobFailed, JobSpec

Q = "workflow:queue"


class Ran:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, payload: dict[str, Any], ctx: Any) -> str:
        self.ids.append(ctx.job_id)
        return "ran"


async def test_a_job_past_its_deadline_expires_unrun_and_frees_its_lock(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """A job enqueued with expires=0.3 and claimed a second later ends as `expired` without
    running; `result()` says so, its unique key can be used again, and the outcome counter
    counts it under status="expired". A job with time left runs."""
    ran = Ran()
    async with Client(make_settings(redis_url)) as client:
        late = await client.enqueue("work", {}, id="late", expires=0.3)
        fresh = await client.enqueue("work", {}, id="fresh", expires=60)
        record = await client.status(late)
        assert record is not None
        assert isinstance(record["expires_at"], float)
        await asyncio.sleep(1.0)
        running = await start_worker(registry={"work": ran})
        assert await client.result(fresh, timeout=10) == "ran"
        with pytest.raises(JobFailed, match="ended as expired"):
            await client.result(late, timeout=10)
        final = await client.status(late)
        assert final is not None
        assert final["state"] == "expired"
        assert await aredis.exists(QueueKeys.for_queue(Q).unique("id:late")) == 0
        assert await client.enqueue("work", {}, id="late") == "late"
        assert await client.result("late", timeout=10) == "ran"
    assert ran.ids == ["fresh", "late"]
    count = await wait_for(
        lambda: running.worker.prom.get_sample_value(
            "workflow_jobs_total", {"queue": Q, "workflow": "work", "status": "expired"}
        )
    )
    assert count == 1


async def test_relative_expiry_is_on_the_server_clock_whatever_the_producer_clock(
    start_worker: WorkerFactory,
    redis_url: str,
    aredis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A producer whose clock is an hour slow still gets `expires=0.3` measured on the
    server: the job expires; one an hour fast still gets `expires=30`: the job runs."""
    real = time.time
    server_now = float((await aredis.time())[0])

    class Skewed:
        offset = -3600.0

        @staticmethod
        def time() -> float:
            return real() + Skewed.offset

    monkeypatch.setattr(requests, "time", Skewed)
    ran = Ran()
    async with Client(make_settings(redis_url)) as client:
        slow = await client.enqueue("work", {}, id="slow-clock", expires=0.3)
        Skewed.offset = 3600.0
        fast = await client.enqueue("work", {}, id="fast-clock", expires=30)
        monkeypatch.undo()
        raw = await aredis.lrange(Q, 0, -1)
        deadlines = {json.loads(m)["id"]: json.loads(m)["expires_at"] for m in raw}
        assert abs(deadlines["slow-clock"] - (server_now + 0.3)) < 5
        assert abs(deadlines["fast-clock"] - (server_now + 30)) < 5
        await asyncio.sleep(0.6)
        await start_worker(registry={"work": ran})
        assert await client.result(fast, timeout=10) == "ran"
        with pytest.raises(JobFailed, match="expired"):
            await client.result(slow, timeout=10)
    assert ran.ids == ["fast-clock"]


async def test_absolute_expiry_datetime_and_raw_wire_field(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """An aware datetime already past expires the job; a raw producer's `expires_at` (Unix
    seconds) in the past does too, even without an id; a naive datetime is refused."""
    ran = Ran()
    past = datetime.now(UTC) - timedelta(seconds=5)
    async with Client(make_settings(redis_url)) as client:
        old = await client.enqueue("work", {}, expires=past)
        await aredis.lpush(Q, json.dumps({"workflow": "work", "expires_at": time.time() - 5}))
        await aredis.lpush(Q, json.dumps({"workflow": "work", "id": "raw", "expires_at": 1.0}))
        with pytest.raises(ValueError, match="timezone-aware"):
            await client.enqueue("work", {}, expires=datetime.now())
        with pytest.raises(ValueError, match="positive number"):
            await client.submit([JobSpec("work", expires=0)])
        running = await start_worker(registry={"work": ran})
        with pytest.raises(JobFailed, match="expired"):
            await client.result(old, timeout=10)
        with pytest.raises(JobFailed, match="expired"):
            await client.result("raw", timeout=10)
        await wait_for(lambda: _drained(aredis))
    assert ran.ids == []
    count = await wait_for(
        lambda: (
            running.worker.prom.get_sample_value(
                "workflow_jobs_total", {"queue": Q, "workflow": "work", "status": "expired"}
            )
            == 3
        )
    )
    assert count


async def _drained(aredis: aioredis.Redis) -> bool:
    keys = QueueKeys.for_queue(Q)
    return await aredis.llen(Q) == 0 and await aredis.hlen(keys.processing) == 0


def test_cli_enqueue_expires(redis_url: str) -> None:
    """`workflow-worker enqueue --expires 30` writes a deadline about 30 s ahead on the
    server's clock into the job and its record; `--expires 0` is refused naming the flag."""
    done = run_cli(redis_url, "enqueue", "echo", "--id", "cli-exp", "--expires", "30")
    assert done.returncode == 0, done.stderr
    with redis.Redis.from_url(redis_url) as client:
        now = float(client.time()[0])
        (raw,) = client.lrange(Q, 0, -1)
        record = client.hgetall(QueueKeys.for_queue(Q).job("cli-exp"))
    assert abs(json.loads(raw)["expires_at"] - (now + 30)) < 5
    assert abs(float(record[b"expires_at"]) - (now + 30)) < 5
    refused = run_cli(redis_url, "enqueue", "echo", "--expires", "0")
    assert refused.returncode == 2
    assert "--expires 0" in refused.stderr
