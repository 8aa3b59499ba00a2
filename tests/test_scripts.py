"""The Lua scripts against a real server: claim, leases, reap, promote, conditional apply, and
what each must survive: a call executed twice because its reply was lost, identical messages,
messages over the size limit, and clocks that disagree."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis.asyncio as aioredis

from workflow_worker.engine import reclaim
from workflow_worker.engine.keys import QueueKeys, hash_tag_base
from workflow_worker.engine.queue import HEAD_BYTES, Op, RedisQueue
from workflow_worker.settings import Settings

Q = "workflow:queue"
LIMIT = 1 << 20
SETTINGS = Settings(queue=Q, crash_redelivery_limit=2, result_ttl=60)


def test_derived_keys_share_the_queue_hash_slot() -> None:
    """Every derived key hashes like the queue itself (Redis Cluster slot)."""
    from redis.crc import key_slot

    for queue in ("workflow:queue", "{jobs}:high", "plain"):
        keys = QueueKeys.for_queue(queue)
        slot = key_slot(queue.encode())
        for name in (
            keys.processing,
            keys.delayed,
            keys.dead,
            keys.dead_blobs,
            keys.workers,
            keys.job("x"),
        ):
            assert key_slot(name.encode()) == slot, name
    assert hash_tag_base("{jobs}:high") == "{jobs}:high"
    assert QueueKeys.for_queue(Q).processing == "{workflow:queue}:processing"


async def test_claim_takes_only_up_to_the_free_slots_in_fifo_order(aredis: aioredis.Redis) -> None:
    """Claim moves at most N jobs, oldest first, into the processing hash, leaving the rest."""
    q = RedisQueue(aredis, Q)
    await q.register("w1", 10_000, {})
    await aredis.lpush(Q, *[f'{{"workflow":"w","id":"{i}"}}' for i in range(5)])
    claimed = await q.claim("w1", 3, 7, LIMIT)
    assert claimed is not None
    assert [json.loads(c.raw)["id"] for c in claimed] == ["0", "1", "2"]
    assert [c.token for c in claimed] == ["w1|7:1", "w1|7:2", "w1|7:3"]
    assert all(c.whole for c in claimed)
    assert await aredis.llen(Q) == 2
    assert await aredis.hlen(q.keys.processing) == 3


async def test_claim_refuses_without_a_live_lease(aredis: aioredis.Redis) -> None:
    """A worker that holds no lease (presumed dead) cannot claim."""
    q = RedisQueue(aredis, Q)
    await aredis.lpush(Q, '{"workflow":"w"}')
    assert await q.claim("ghost", 1, 1, LIMIT) is None
    assert await aredis.llen(Q) == 1


async def test_a_claim_executed_twice_answers_the_same_jobs(aredis: aioredis.Redis) -> None:
    """A claim call whose reply was lost, sent again with the same call id, returns the jobs
    the first execution took and takes no more; nothing is overwritten or lost."""
    q = RedisQueue(aredis, Q)
    await q.register("w", 60_000, {})
    await aredis.lpush(Q, *[f'{{"workflow":"w","id":"{i}"}}' for i in range(6)])
    first = await q.claim("w", 3, 1, LIMIT)  # its reply "lost": the worker never saw it
    again = await q.claim("w", 3, 1, LIMIT)
    assert first == again
    assert await aredis.hlen(q.keys.processing) == 3
    assert await aredis.llen(Q) == 3
    following = await q.claim("w", 3, 2, LIMIT)
    assert following is not None
    assert {c.token for c in following}.isdisjoint({c.token for c in again or []})
    assert await aredis.hlen(q.keys.processing) == 6


async def test_a_claim_over_the_size_limit_answers_only_the_head(aredis: aioredis.Redis) -> None:
    """A huge message is claimed but only its head travels to the worker."""
    q = RedisQueue(aredis, Q)
    await q.register("w", 60_000, {})
    huge = '{"id":"big","workflow":"w","payload":{"x":"' + "\x01" * (3 * LIMIT) + '"}}'
    await aredis.lpush(Q, huge)
    (item,) = await q.claim("w", 1, 1, LIMIT) or []
    assert not item.whole
    assert item.size == len(huge.encode())
    assert len(item.raw) == HEAD_BYTES


async def test_reap_redelivers_a_dead_workers_jobs_to_the_front(aredis: aioredis.Redis) -> None:
    """Jobs of an expired lease go back to the consuming end; live workers keep theirs."""
    q = RedisQueue(aredis, Q)
    await q.register("dead", 60_000, {})
    await q.register("alive", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"a"}', '{"workflow":"w","id":"b"}')
    await q.claim("alive", 1, 1, LIMIT)
    assert await q.claim("dead", 1, 1, LIMIT)
    await aredis.zadd(q.keys.workers, {"dead": 1})
    await aredis.lpush(Q, '{"workflow":"w","id":"c"}')
    done = await reclaim.reap(q, SETTINGS, full_scan=False)
    assert done == reclaim.Reaped(requeued=1, dead_lettered=0, workers_removed=1)
    assert json.loads(_must(await aredis.lindex(Q, -1)))["id"] == "b"
    assert await aredis.hlen(q.keys.processing) == 1
    assert await aredis.zscore(q.keys.workers, "dead") is None


async def test_reap_full_scan_finds_orphans(aredis: aioredis.Redis) -> None:
    """A claim whose worker has no lease entry at all is re-delivered by a full scan."""
    q = RedisQueue(aredis, Q)
    await aredis.hset(q.keys.processing, "gone|7:1", '{"workflow":"w","id":"o"}')
    assert await reclaim.reap(q, SETTINGS, full_scan=False) == reclaim.Reaped()
    assert await reclaim.reap(q, SETTINGS, full_scan=True) == reclaim.Reaped(requeued=1)
    assert json.loads(_must(await aredis.lindex(Q, -1)))["id"] == "o"


async def test_reap_leaves_a_claim_whose_owner_renewed_meanwhile(aredis: aioredis.Redis) -> None:
    """The second step re-checks the owner: a lease renewed after the scan keeps its claims."""
    q = RedisQueue(aredis, Q)
    await q.register("slow", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"s"}')
    await q.claim("slow", 1, 1, LIMIT)
    await aredis.zadd(q.keys.workers, {"slow": 1})
    _, orphans = await q.orphans(False, 10, LIMIT, 60_000)
    await q.register("slow", 60_000, {})  # it was only late
    assert await q.reap(reclaim.reap_orders(orphans, SETTINGS), 60, 2) == [0]
    assert await aredis.hlen(q.keys.processing) == 1


async def test_a_fleet_wide_stall_extends_leases_instead_of_reaping(
    aredis: aioredis.Redis,
) -> None:
    """When nobody renewed for a whole lease (Redis or the network stalled for everyone), the
    first reaper to run afterwards extends every lease by one lease rather than re-delivering
    the whole fleet's jobs; one worker late among live ones is still reaped."""
    q = RedisQueue(aredis, Q)
    for worker in ("a", "b"):
        await q.register(worker, 60_000, {})
        await aredis.lpush(Q, f'{{"workflow":"w","id":"{worker}"}}')
        await q.claim(worker, 1, 1, LIMIT)
    await aredis.zadd(q.keys.workers, {"a": 1, "b": 1})
    await aredis.set(q.keys.pulse, 1)  # the last renewal by anyone: long ago
    assert await reclaim.reap(q, SETTINGS, full_scan=False) == reclaim.Reaped()
    assert await aredis.hlen(q.keys.processing) == 2
    assert (await aredis.zscore(q.keys.workers, "a") or 0) > 1
    await q.renew("b", 60_000, {})  # b is back (the pulse is fresh again); a stays silent
    await aredis.zadd(q.keys.workers, {"a": 1})
    assert await reclaim.reap(q, SETTINGS, full_scan=False) == reclaim.Reaped(1, 0, 1)


async def test_crash_budget_ends_the_status_record_and_releases_the_lock(
    aredis: aioredis.Redis,
) -> None:
    """After K re-deliveries the job is dead-lettered, its status says dead, and its unique lock
    and cancel request are gone, so result() returns and the id can be enqueued again."""
    q = RedisQueue(aredis, Q)
    text = '{"unique_key":"id:oom","id":"oom","workflow":"w"}'
    await aredis.lpush(Q, text)
    await aredis.hset(q.keys.job("oom"), mapping={"state": "running"})
    await aredis.set(q.keys.unique("id:oom"), "oom")
    await aredis.set(q.keys.cancel("oom"), "1")
    for round_ in range(3):
        await q.register(f"w{round_}", 60_000, {})
        assert await q.claim(f"w{round_}", 1, 1, LIMIT), f"round {round_}: not re-delivered"
        await aredis.zadd(q.keys.workers, {f"w{round_}": 1})
        await reclaim.reap(q, SETTINGS, full_scan=False)
    assert await aredis.llen(Q) == 0
    entry = json.loads(_must(await aredis.lindex(q.keys.dead, 0)))
    assert entry["kind"] == "crash_budget"
    assert json.loads(entry["job"])["id"] == "oom"
    assert await aredis.hget(q.keys.job("oom"), "state") == b"dead"
    assert b"crash redelivery budget" in _must(await aredis.hget(q.keys.job("oom"), "error"))
    assert await aredis.exists(q.keys.unique("id:oom"), q.keys.cancel("oom")) == 0
    assert await aredis.hlen(q.keys.redeliveries) == 0


async def test_identical_id_less_messages_keep_their_own_crash_counts(
    aredis: aioredis.Redis,
) -> None:
    """Two byte-identical messages without an id get an id each when first reaped, so their
    crash counts are separate and cleared when they finish; nothing is left behind."""
    q = RedisQueue(aredis, Q)
    text = '{"workflow":"w","payload":{"n":1}}'
    await aredis.lpush(Q, text, text)
    await q.register("w1", 60_000, {})
    assert len(await q.claim("w1", 2, 1, LIMIT) or []) == 2
    await aredis.zadd(q.keys.workers, {"w1": 1})
    assert (await reclaim.reap(q, SETTINGS, full_scan=False)).requeued == 2
    requeued = [json.loads(raw) for raw in await aredis.lrange(Q, 0, -1)]
    ids = {job["id"] for job in requeued}
    assert len(ids) == 2
    assert all(job["payload"] == {"n": 1} for job in requeued)
    assert await aredis.hgetall(q.keys.redeliveries) == {i.encode(): b"1" for i in ids}
    await q.register("w2", 60_000, {})
    claimed = await q.claim("w2", 2, 1, LIMIT) or []
    ops = [Op("done", c.token, json.loads(c.raw)["id"]) for c in claimed]
    assert await q.apply(ops, 60) == [1, 1]
    assert await aredis.hlen(q.keys.redeliveries) == 0


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
    claimed = await q.claim("w", 1, 1, LIMIT)
    assert claimed
    token = claimed[0].token
    held = await q.apply(
        [Op("retry", token, "j", '{"id":"j","attempt":2}', 5, {"state": "retrying"})], 60
    )
    assert held == [1]
    assert await aredis.zcard(q.keys.delayed) == 1
    assert await aredis.hget(q.keys.job("j"), "state") == b"retrying"
    await aredis.zadd(q.keys.workers, {"w": 1})  # presumed dead meanwhile
    again = await q.apply([Op("dead", token, "j", "{}", 0, {"state": "failure"})], 60, infer=True)
    assert again == [0]
    assert await aredis.llen(q.keys.dead) == 0
    assert await aredis.hget(q.keys.job("j"), "state") == b"retrying"
    assert 0 < await aredis.ttl(q.keys.job("j")) <= 61


async def test_an_acknowledgement_applied_twice_is_not_a_duplicate(
    aredis: aioredis.Redis,
) -> None:
    """A batch sent again after its reply was lost finds its claims gone while its worker's
    lease is live: the ops count as applied (no false duplicate) and nothing is written twice."""
    q = RedisQueue(aredis, Q)
    await q.register("w", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"r"}', '{"workflow":"w","id":"d"}')
    claimed = await q.claim("w", 2, 1, LIMIT) or []
    retry = Op("retry", claimed[0].token, "r", '{"id":"r","attempt":2}', 1, {"state": "retrying"})
    done = Op("done", claimed[1].token, "d", status={"state": "success"})
    assert await q.apply([retry, done], 60, infer=True) == [1, 1]
    await aredis.hset(q.keys.job("r"), "state", "running")  # the retry already runs elsewhere
    assert await q.apply([retry, done], 60, infer=True) == [1, 1]
    assert await aredis.zcard(q.keys.delayed) == 1
    assert await aredis.hget(q.keys.job("r"), "state") == b"running"
    # The audit's own requeues never infer: a claim gone is a claim it did not put back.
    assert await q.apply([Op("requeue", claimed[1].token, arg="{}")], 60) == [0]


async def test_delays_are_counted_on_the_server_clock(aredis: aioredis.Redis) -> None:
    """A retry's due time is the server's now plus its delay, whatever the worker's clock says;
    its status record lives the delay longer than the TTL."""
    q = RedisQueue(aredis, Q)
    await q.register("w", 60_000, {})
    await aredis.lpush(Q, '{"workflow":"w","id":"late"}')
    (item,) = await q.claim("w", 1, 1, LIMIT) or []
    op = Op("retry", item.token, "late", '{"id":"late","attempt":2}', 90_000_000, {"state": "x"})
    op.extra_s = 90_000
    await q.apply([op], 60)
    secs, micros = await aredis.time()
    server_now_ms = secs * 1000 + micros // 1000
    score = await aredis.zscore(q.keys.delayed, '{"id":"late","attempt":2}')
    assert score is not None
    assert abs(score - (server_now_ms + 90_000_000)) < 2_000
    assert await aredis.ttl(q.keys.job("late")) > 90_000
    due_at = float(_must(await aredis.hget(q.keys.job("late"), "due_at")))
    assert abs(due_at - (server_now_ms / 1000 + 90_000)) < 2


async def test_final_records_drop_retry_fields(aredis: aioredis.Redis) -> None:
    """A final outcome leaves no stale `next_attempt_in` or `due_at` on the status record."""
    q = RedisQueue(aredis, Q)
    await q.register("w", 60_000, {})
    await aredis.hset(q.keys.job("f"), mapping={"next_attempt_in": "1.0", "due_at": "1"})
    await aredis.lpush(Q, '{"workflow":"w","id":"f"}')
    (item,) = await q.claim("w", 1, 1, LIMIT) or []
    await q.apply([Op("done", item.token, "f", status={"state": "success"})], 60)
    assert await aredis.hgetall(q.keys.job("f")) == {b"state": b"success"}


def _must(value: Any) -> str | bytes:
    assert isinstance(value, str | bytes)
    return value
