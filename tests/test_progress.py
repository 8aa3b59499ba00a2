"""`ctx.progress()`: a running job's progress in its status record, coalesced, through the
worker's batcher, shown by `client.status()` and `workflow-worker job`."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import WorkerFactory, make_settings, run_cli, wait_for
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.queue import Op, RedisQueue
from workflow_worker.producer.client import Client
from workflow_worker.workflows.context import JobContext

Q = "workflow:queue"


async def test_progress_shows_in_status_and_the_cli(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A running job's `await ctx.progress(0.4, ...)` appears in `client.status()` as a float
    with its message, and in `workflow-worker job ID --json`."""
    release = asyncio.Event()

    async def embed(payload: dict[str, Any], ctx: JobContext) -> str:
        await ctx.progress(0.4, "embedding 40/100")
        await release.wait()
        return "ok"

    await start_worker(registry={"embed": embed})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("embed", {})
        record = await wait_for(lambda: _with_progress(client, job_id))
        assert record["state"] == "running"
        assert record["progress"] == 0.4
        assert type(record["progress"]) is float
        assert record["progress_message"] == "embedding 40/100"
        shown = await asyncio.to_thread(run_cli, redis_url, "job", job_id, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["progress"] == 0.4
        release.set()
        assert await client.result(job_id, timeout=10) == "ok"


async def _with_progress(client: Client, job_id: str) -> dict[str, Any] | None:
    record = await client.status(job_id)
    return record if record and "progress" in record else None


async def test_progress_is_coalesced_and_the_final_record_keeps_the_last(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """A job reporting progress 100 times in one second causes at most a handful of writes
    (the record is seen to change at most 6 times), and its final record holds the last value,
    reported just before it returned."""
    started = asyncio.Event()

    async def chatty(payload: dict[str, Any], ctx: JobContext) -> int:
        started.set()
        for n in range(1, 101):
            await ctx.progress(n / 100, f"step {n}/100")
            await asyncio.sleep(0.01)
        return 100

    await start_worker(registry={"chatty": chatty})
    key = QueueKeys.for_queue(Q).job("c1")
    seen: list[Any] = []
    async with Client(make_settings(redis_url)) as client:
        await client.enqueue("chatty", {}, id="c1")
        await started.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            value = await aredis.hget(key, "progress_message")
            if value is not None and (not seen or seen[-1] != value):
                seen.append(value)
            if await aredis.hget(key, "state") == b"success":
                break
        final = await client.status("c1")
    assert final is not None
    assert final["state"] == "success"
    assert (final["progress"], final["progress_message"]) == (1.0, "step 100/100")
    assert 2 <= len(seen) <= 7, seen


async def test_sync_workflow_reports_progress_without_await(
    start_worker: WorkerFactory, redis_url: str
) -> None:
    """A plain `def` workflow calls `ctx.progress(...)` from its thread, without await, and the
    record shows it."""
    release = threading.Event()

    def convert(payload: dict[str, Any], ctx: JobContext) -> str:
        ctx.progress(0.5, "half way")
        release.wait(10)
        return "converted"

    await start_worker(registry={"convert": convert})
    async with Client(make_settings(redis_url)) as client:
        job_id = await client.enqueue("convert", {})
        record = await wait_for(lambda: _with_progress(client, job_id))
        assert (record["progress"], record["progress_message"]) == (0.5, "half way")
        release.set()
        assert await client.result(job_id, timeout=10) == "converted"


async def test_progress_of_a_job_without_id_is_dropped(
    start_worker: WorkerFactory, aredis: aioredis.Redis
) -> None:
    """A raw job without an id has no status record while it runs: its progress reports are
    dropped, the job still succeeds, and its final record holds no progress."""
    done = asyncio.Event()

    async def quiet(payload: dict[str, Any], ctx: JobContext) -> None:
        await ctx.progress(0.5)
        done.set()

    await start_worker(registry={"quiet": quiet})
    await aredis.lpush(Q, json.dumps({"workflow": "quiet"}))
    await asyncio.wait_for(done.wait(), 10)
    pattern = QueueKeys.for_queue(Q).job("*")
    keys = await wait_for(lambda: _keys(aredis, pattern))
    record = await aredis.hgetall(keys[0])
    assert record[b"state"] == b"success"
    assert b"progress" not in record


async def _keys(aredis: aioredis.Redis, pattern: str) -> list[bytes]:
    return [k async for k in aredis.scan_iter(match=pattern)]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "half", True])
def test_progress_must_be_a_fraction(bad: Any) -> None:
    """`ctx.progress` refuses anything but a number from 0 to 1."""
    ctx = JobContext("j", "w", 1, 1, Q, None, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from 0 to 1"):
        ctx.progress(bad)


async def test_progress_op_writes_only_while_the_claim_is_held(aredis: aioredis.Redis) -> None:
    """The apply script's "progress" op writes progress fields for a held claim, and for a claim
    that is gone writes nothing and answers 0."""
    q = RedisQueue(aredis, Q)
    await q.register("w1", 10_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"p1"}')
    (claimed,) = await q.claim("w1", 1, 1, 1 << 20) or []
    fields = {"progress": "0.2500", "progress_message": "a quarter"}
    assert await q.apply([Op("progress", claimed.token, "p1", status=fields)], 60) == [1]
    assert await aredis.hgetall(q.keys.job("p1")) == {
        b"progress": b"0.2500",
        b"progress_message": b"a quarter",
    }
    gone = {"progress": "0.9000", "progress_message": "late"}
    assert await q.apply([Op("progress", "w1|9:9", "p2", status=gone)], 60) == [0]
    assert await aredis.exists(q.keys.job("p2")) == 0
