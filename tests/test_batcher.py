"""The batcher stores every update once, and one bad update never blocks the others."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from tests.conftest import Runner
from tests.servers import RedisServer
from workflow_worker.engine.batcher import Batcher
from workflow_worker.engine.queue import Claimed, Op, RedisQueue
from workflow_worker.ops.metrics import Metrics

Q = "workflow:queue"


async def test_an_op_redis_cannot_take_is_isolated_and_the_rest_land(
    aredis: aioredis.Redis,
) -> None:
    """An op whose key is not valid UTF-8 is stored sanitized; its batch-mates are stored as is."""
    queue = RedisQueue(aredis, Q)
    await queue.register("w", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"ok"}', '{"workflow":"w"}')
    claimed = await queue.claim("w", 2, 1, 1 << 20)
    assert claimed is not None
    batcher = Batcher(queue, Metrics(CollectorRegistry(), Q), 60)
    batcher.start()
    bad = batcher.submit(Op("done", claimed[0].token, "odd\ud800", status={"state": "success"}))
    good = batcher.submit(Op("done", claimed[1].token, "ok", status={"state": "success"}))
    assert list(await asyncio.wait_for(asyncio.gather(bad, good), 10)) == [1, 1]
    assert await aredis.hlen(queue.keys.processing) == 0
    assert await aredis.hget(queue.keys.job("ok"), "state") == b"success"
    assert await aredis.hget(queue.keys.job("odd\\ud800"), "state") == b"success"
    await batcher.flush()
    await batcher.close()


async def test_flush_waits_for_fire_and_forget_ops(aredis: aioredis.Redis) -> None:
    """`flush` returns only after posted ops (with no future) are stored."""
    queue = RedisQueue(aredis, Q)
    await queue.register("w", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"p"}')
    claimed = await queue.claim("w", 1, 1, 1 << 20)
    assert claimed is not None
    batcher = Batcher(queue, Metrics(CollectorRegistry(), Q), 60)
    batcher.start()
    batcher.post(Op("start", claimed[0].token, "p", status={"state": "running"}))
    await asyncio.wait_for(batcher.flush(), 10)
    assert await aredis.hget(queue.keys.job("p"), "state") == b"running"
    await batcher.close()


async def test_updates_land_after_a_script_flush_and_a_killed_connection(
    aredis: aioredis.Redis,
) -> None:
    """The batcher's own connection reloads a flushed script and replaces a killed socket."""
    queue, claimed = await claimed_jobs(aredis, 3)
    registry = CollectorRegistry()
    batcher = Batcher(queue, Metrics(registry, Q), 60)
    batcher.start()

    async def done(n: int) -> int:
        op = Op("done", claimed[n].token, f"j{n}", status={"state": "success"})
        return await asyncio.wait_for(batcher.submit(op), 10)

    assert await done(0) == 1
    await aredis.script_flush()
    assert await done(1) == 1
    # The server drops every other connection (an idle timeout, a proxy restart):
    own = (await aredis.client_info())["id"]
    for client in await aredis.client_list():
        if client["id"] != own:
            await aredis.client_kill_filter(_id=client["id"])
    assert await done(2) == 1
    assert await aredis.hlen(queue.keys.processing) == 0
    for n in range(3):
        assert await aredis.hget(queue.keys.job(f"j{n}"), "state") == b"success"
    errors = registry.get_sample_value(
        "workflow_redis_errors_total", {"queue": Q, "operation": "apply"}
    )
    assert not errors, "a dropped idle connection is replaced without an error"
    await batcher.close()


async def claimed_jobs(client: aioredis.Redis, count: int) -> tuple[RedisQueue, list[Claimed]]:
    queue = RedisQueue(client, Q)
    await queue.register("w", 60_000, {})
    await client.lpush(Q, *[f'{{"workflow":"w","id":"j{i}"}}' for i in range(count)])
    claimed = await queue.claim("w", count, 1, 1 << 20)
    assert claimed is not None
    return queue, claimed


def done(item: Claimed, n: int) -> Op:
    return Op("done", item.token, f"j{n}", status={"state": "success"})


def test_ops_of_one_iteration_leave_together_and_so_do_those_behind_a_batch(
    redis_url: str, run: Runner
) -> None:
    """Ops submitted in one loop iteration go out as one script call; ops queued while a batch
    is on the wire go out together when its reply comes: 1 + 99 ops, 2 calls, not 100."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        queue, claimed = await claimed_jobs(client, 201)
        batcher = Batcher(queue, Metrics(CollectorRegistry(), Q), 60)
        batcher.start()
        assert await asyncio.wait_for(batcher.submit(done(claimed[0], 0)), 10) == 1
        await client.config_resetstat()
        wave = [batcher.submit(done(c, n)) for n, c in enumerate(claimed[1:101], 1)]
        assert await asyncio.wait_for(asyncio.gather(*wave), 10) == [1] * 100
        assert (await client.info("commandstats"))["cmdstat_evalsha"]["calls"] == 1
        await client.config_resetstat()
        first = batcher.submit(done(claimed[101], 101))
        await asyncio.sleep(0)  # the lone op is written; the rest queue behind it
        rest = [batcher.submit(done(c, n)) for n, c in enumerate(claimed[102:], 102)]
        assert await asyncio.wait_for(asyncio.gather(first, *rest), 10) == [1] * 100
        assert (await client.info("commandstats"))["cmdstat_evalsha"]["calls"] == 2
        assert await client.hlen(queue.keys.processing) == 0
        await batcher.close()
        await client.aclose()

    run(scenario())


def test_a_failing_continuation_leaves_the_others_running(redis_url: str, run: Runner) -> None:
    """An op's continuation that raises is logged; its batch-mates' continuations still run."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        queue, claimed = await claimed_jobs(client, 2)
        batcher = Batcher(queue, Metrics(CollectorRegistry(), Q), 60)
        batcher.start()
        results: list[int] = []

        def broken(_held: int) -> None:
            raise RuntimeError("continuation bug")

        batcher.store(done(claimed[0], 0), broken)
        batcher.store(done(claimed[1], 1), results.append)
        await asyncio.wait_for(batcher.flush(), 10)
        assert results == [1]
        await batcher.close()
        await client.aclose()

    run(scenario())


def test_updates_wait_for_redis_to_come_back_and_then_land(tmp_path: Path, run: Runner) -> None:
    """With the server down, an update is retried with backoff (counted as a Redis error) and
    lands once the server is back; nothing is dropped."""
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()

    async def scenario() -> None:
        client = aioredis.Redis.from_url(server.url)
        queue, claimed = await claimed_jobs(client, 2)
        registry = CollectorRegistry()
        batcher = Batcher(queue, Metrics(registry, Q), 60)
        batcher.start()
        assert await asyncio.wait_for(batcher.submit(done(claimed[0], 0)), 10) == 1
        server.stop()
        later = batcher.submit(done(claimed[1], 1))
        await asyncio.sleep(1.0)
        assert not later.done()
        server.start()
        assert await asyncio.wait_for(later, 15) == 1
        assert await client.hget(queue.keys.job("j1"), "state") == b"success"
        errors = registry.get_sample_value(
            "workflow_redis_errors_total", {"queue": Q, "operation": "apply"}
        )
        assert errors is not None
        assert errors >= 1
        await batcher.close()
        await client.aclose()

    try:
        run(scenario())
    finally:
        server.stop()


class _Wrapped:
    """A stream writer behind a wrapper: what a future redis-py might hold instead."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class _OtherLayout(aioredis.Connection):
    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        self._writer = _Wrapped(self._writer)  # type: ignore[assignment]


def test_a_connection_that_cannot_be_taken_over_falls_back_to_the_client(
    redis_url: str, run: Runner
) -> None:
    """If redis-py's connection is not laid out as expected, updates go through the client
    (after one counted retry) instead of waiting forever."""

    async def scenario() -> None:
        pool = aioredis.ConnectionPool.from_url(redis_url, connection_class=_OtherLayout)
        client = aioredis.Redis(connection_pool=pool)
        queue, claimed = await claimed_jobs(client, 2)
        batcher = Batcher(queue, Metrics(CollectorRegistry(), Q), 60)
        batcher.start()
        results = [batcher.submit(done(c, n)) for n, c in enumerate(claimed)]
        assert await asyncio.wait_for(asyncio.gather(*results), 10) == [1, 1]
        assert await client.hlen(queue.keys.processing) == 0
        await batcher.close()
        await client.aclose()
        await pool.disconnect()

    run(scenario())
