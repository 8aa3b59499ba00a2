"""The Lua scripts against a real server: claim, leases, reap, promote and conditional apply."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from workflow_worker.engine.keys import QueueKeys, hash_tag_base
from workflow_worker.engine.queue import Op, RedisQueue

Q = "workflow:queue"


def test_derived_keys_share_the_queue_hash_slot() -> None:
    """Every derived key hashes like the queue itself (Redis Cluster slot)."""
    from redis.crc import key_slot

    for queue in ("workflow:queue", "{jobs}:high", "plain"):
        keys = QueueKeys.for_queue(queue)
        slot = key_slot(queue.encode())
        for name in (keys.processing, keys.delayed, keys.dead, keys.workers, keys.job("x")):
            assert key_slot(name.encode()) == slot, name
    assert hash_tag_base("{jobs}:high") == "{jobs}:high"
    assert QueueKeys.for_queue(Q).processing == "{workflow:queue}:processing"


async def test_claim_takes_only_up_to_the_free_slots_in_fifo_order(aredis: aioredis.Redis) -> None:
    """Claim moves at most N jobs, oldest first, into the processing hash, leaving the rest."""
    q = RedisQueue(aredis, Q)
    await q.register("w1", 10_000, {})
    await aredis.lpush(Q, *[f'{{"workflow":"w","id":"{i}"}}' for i in range(5)])
    claimed = await q.claim("w1", 3, 0)
    assert claimed is not None
    assert [json.loads(c.raw)["id"] for c in claimed] == ["0", "1", "2"]
    assert [c.token for c in claimed] == ["w1|0", "w1|1", "w1|2"]
    assert await aredis.llen(Q) == 2
    assert await aredis.hlen(q.keys.processing) == 3


async def test_claim_refuses_without_a_live_lease(aredis: aioredis.Redis) -> None:
    """A worker that holds no lease (presumed dead) cannot claim."""
    q = RedisQueue(aredis, Q)
    await aredis.lpush(Q, '{"workflow":"w"}')
    assert await q.claim("ghost", 1, 0) is None
    assert await aredis.llen(Q) == 1


async def test_reap_redelivers_a_dead_workers_jobs_to_the_front(aredis: aioredis.Redis) -> None:
    """Jobs of an expired lease go back to the consuming end; live workers keep theirs."""
    q = RedisQueue(aredis, Q)
    await q.register("dead", 1, {})
    await q.register("alive", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"a"}', '{"workflow":"w","id":"b"}')
    await q.claim("alive", 1, 0)
    await asyncio.sleep(0.01)
    await aredis.zadd(q.keys.workers, {"dead": 10_000_000_000_000})
    assert await q.claim("dead", 1, 0)
    await aredis.zadd(q.keys.workers, {"dead": 1})
    await aredis.lpush(Q, '{"workflow":"w","id":"c"}')
    requeued, buried, removed = await q.reap(crash_budget=5, full_scan=False)
    assert (requeued, buried, removed) == (1, 0, 1)
    assert json.loads(_must(await aredis.lindex(Q, -1)))["id"] == "b"
    assert await aredis.hlen(q.keys.processing) == 1
    assert await aredis.zscore(q.keys.workers, "dead") is None


async def test_reap_full_scan_finds_orphans(aredis: aioredis.Redis) -> None:
    """A claim whose worker has no lease entry at all is re-delivered by a full scan."""
    q = RedisQueue(aredis, Q)
    await aredis.hset(q.keys.processing, "gone|7", '{"workflow":"w","id":"o"}')
    assert await q.reap(5, full_scan=False) == (0, 0, 0)
    assert await q.reap(5, full_scan=True) == (1, 0, 0)
    assert json.loads(_must(await aredis.lindex(Q, -1)))["id"] == "o"


async def test_crash_budget_sends_a_crash_looping_job_to_dead_letter(
    aredis: aioredis.Redis,
) -> None:
    """After K re-deliveries the job is dead-lettered instead of re-delivered again."""
    q = RedisQueue(aredis, Q)
    await aredis.lpush(Q, '{"workflow":"w","id":"oom"}')
    for round_ in range(3):
        await q.register(f"w{round_}", 60_000, {})
        claimed = await q.claim(f"w{round_}", 1, 0)
        assert claimed, f"round {round_}: job should have been re-delivered"
        await aredis.zadd(q.keys.workers, {f"w{round_}": 1})
        await q.reap(crash_budget=2, full_scan=False)
    assert await aredis.llen(Q) == 0
    entry = json.loads(_must(await aredis.lindex(q.keys.dead, 0)))
    assert entry["kind"] == "crash_budget"
    assert json.loads(entry["job"])["id"] == "oom"


async def test_promote_moves_each_due_job_exactly_once(aredis: aioredis.Redis) -> None:
    """Many concurrent promoters move each due job once, and leave future jobs alone."""
    q = RedisQueue(aredis, Q)
    await aredis.zadd(q.keys.delayed, {f'{{"id":"{i}"}}': 1 for i in range(200)})
    await aredis.zadd(q.keys.delayed, {'{"id":"later"}': 10_000_000_000_000})
    # 60 calls in flight at once over the client's connection pool.
    results = await asyncio.gather(*[q.promote(limit=7) for _ in range(60)])
    assert sum(moved for moved, _ in results) == 200
    items = await aredis.lrange(Q, 0, -1)
    assert len(items) == len(set(items)) == 200
    assert await aredis.zcard(q.keys.delayed) == 1
    _, next_due = await q.promote()
    assert next_due is not None
    assert next_due > 1e6, "the remaining job is due far in the future"


async def test_apply_is_conditional_on_holding_the_claim(aredis: aioredis.Redis) -> None:
    """A retry or dead-letter from a worker that lost its claim changes nothing."""
    q = RedisQueue(aredis, Q)
    await q.register("w", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"j"}')
    claimed = await q.claim("w", 1, 0)
    assert claimed
    token = claimed[0].token
    held = await q.apply(
        [Op("retry", token, "j", '{"id":"j","attempt":2}', 5, {"state": "retrying"})], 60
    )
    assert held == [True]
    assert await aredis.zcard(q.keys.delayed) == 1
    assert await aredis.hget(q.keys.job("j"), "state") == b"retrying"
    again = await q.apply([Op("dead", token, "j", "{}", 0, {"state": "failure"})], 60)
    assert again == [False]
    assert await aredis.llen(q.keys.dead) == 0
    assert await aredis.hget(q.keys.job("j"), "state") == b"retrying"
    assert 0 < await aredis.ttl(q.keys.job("j")) <= 60


def _must(value: object) -> str | bytes:
    assert isinstance(value, str | bytes)
    return value
