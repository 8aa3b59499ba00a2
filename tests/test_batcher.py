"""The batcher stores every update once, and one bad update never blocks the others."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from worker.batcher import Batcher
from worker.metrics import Metrics
from worker.queue import Op, RedisQueue

Q = "workflow:queue"


async def test_an_op_redis_cannot_take_is_isolated_and_the_rest_land(
    aredis: aioredis.Redis,
) -> None:
    """An op whose key is not valid UTF-8 is stored sanitized; its batch-mates are stored as is."""
    queue = RedisQueue(aredis, Q)
    await queue.register("w", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"ok"}', '{"workflow":"w"}')
    claimed = await queue.claim("w", 2, 0)
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
    claimed = await queue.claim("w", 1, 0)
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
    queue = RedisQueue(aredis, Q)
    await queue.register("w", 60_000, {})
    await aredis.lpush(Q, *[f'{{"workflow":"w","id":"j{i}"}}' for i in range(3)])
    claimed = await queue.claim("w", 3, 0)
    assert claimed is not None
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
