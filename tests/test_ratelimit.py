"""Fleet-wide rate and concurrency limits per workflow, on a real Redis shared by two clients."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.limits import Limits, parse_rate_limits
from workflow_worker.engine.ratelimit import RateLimiter
from workflow_worker.errors import ConfigError

Q = "workflow:queue"
PROCESSING = QueueKeys.for_queue(Q).processing
_tokens = itertools.count()


class CountingRedis(aioredis.Redis):
    """A client that remembers every command it sends."""

    sent: list[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        parent: Any = super()  # redis-py leaves execute_command untyped
        return await parent.execute_command(*args, **options)


@pytest.fixture
async def second_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A second connection, standing for another worker replica."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def claimed(client: aioredis.Redis, count: int) -> list[str]:
    """Fresh claim tokens, put in the processing hash as the claim script does."""
    tokens = [f"w{next(_tokens)}|0" for _ in range(count)]
    await client.hset(PROCESSING, mapping=dict.fromkeys(tokens, "{}"))
    return tokens


async def storm(limiters: list[RateLimiter], workflow: str, tokens: list[str]) -> list[float]:
    """All acquires at once, spread over the limiters (one per worker)."""
    calls = [
        limiters[i % len(limiters)].acquire(workflow, token, 60) for i, token in enumerate(tokens)
    ]
    return list(await asyncio.gather(*calls))


async def test_rate_limit_shared_by_two_workers_admits_exactly_n_per_window(
    aredis: aioredis.Redis, second_client: aioredis.Redis
) -> None:
    """Concurrent storms from two workers on separate connections admit exactly N per minute."""
    limits = {"ai": Limits(per_minute=7)}
    workers = [RateLimiter(aredis, Q, limits), RateLimiter(second_client, Q, limits)]
    first = await storm(workers, "ai", await claimed(aredis, 60))
    second = await storm(workers, "ai", await claimed(aredis, 60))
    assert first.count(0.0) == 7
    assert second.count(0.0) == 0
    assert all(0 < wait <= 60 * 1.1 for wait in first + second if wait)


async def test_sliding_window_holds_in_every_second_under_sustained_pressure(
    aredis: aioredis.Redis, second_client: aioredis.Redis
) -> None:
    """Workers that retry after the answered wait get N per second, never more in any second."""
    limits = {"ai": Limits(per_second=3, per_minute=1000)}
    workers = [RateLimiter(aredis, Q, limits), RateLimiter(second_client, Q, limits)]
    admitted: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.5

    async def job(limiter: RateLimiter, token: str) -> None:
        while loop.time() < deadline:
            wait = await limiter.acquire("ai", token, 60)
            if wait == 0.0:
                admitted.append(token)
                return
            await asyncio.sleep(wait)

    tokens = await claimed(aredis, 40)
    await asyncio.gather(*(job(workers[i % 2], t) for i, t in enumerate(tokens)))
    starts_key = workers[0].keys("ai")[0]
    raw = await aredis.zrange(starts_key, 0, -1, withscores=True)
    starts = cast("list[tuple[bytes, float]]", raw)
    assert sorted(t.decode() for t, _ in starts) == sorted(admitted)
    times = sorted(score for _, score in starts)
    assert all(times[i + 3] - times[i] >= 1000 for i in range(len(times) - 3))
    assert len(admitted) >= 6, "jobs that waited as told were admitted in later seconds"


async def test_wait_answer_is_the_time_until_a_start_fits(aredis: aioredis.Redis) -> None:
    """A denied job is told to wait at most the window, and is admitted after waiting that long."""
    limiter = RateLimiter(aredis, Q, {"ai": Limits(per_second=2)}, jitter=0.0)
    a, b, c, d = await claimed(aredis, 4)
    loop = asyncio.get_running_loop()
    asked_a = loop.time()
    assert await limiter.acquire("ai", a, 60) == 0.0
    await asyncio.sleep(0.3)
    assert await limiter.acquire("ai", b, 60) == 0.0
    b_after_a = loop.time() - asked_a
    wait = await limiter.acquire("ai", c, 60)
    assert 0 < wait <= 0.7, "the first start leaves the window 1 s after it, 0.3 s ago or more"
    await asyncio.sleep(wait)
    assert await limiter.acquire("ai", c, 60) == 0.0
    assert 0 < await limiter.acquire("ai", d, 60) <= b_after_a, "b leaves the window next"


async def test_reacquiring_with_the_same_token_counts_once(aredis: aioredis.Redis) -> None:
    """A retried acquire (say after a lost reply) answers 0 again without using another start."""
    limiter = RateLimiter(aredis, Q, {"ai": Limits(per_minute=1, concurrent=5)})
    a, b = await claimed(aredis, 2)
    assert await limiter.acquire("ai", a, 60) == 0.0
    assert await limiter.acquire("ai", a, 60) == 0.0
    assert await limiter.acquire("ai", b, 60) > 0
    assert await aredis.zcard(limiter.keys("ai")[1]) == 1


async def test_concurrency_limit_is_shared_and_release_frees_a_slot(
    aredis: aioredis.Redis, second_client: aioredis.Redis
) -> None:
    """At most M jobs hold slots across two workers; a release lets exactly one more in."""
    limits = {"render": Limits(concurrent=3)}
    workers = [RateLimiter(aredis, Q, limits), RateLimiter(second_client, Q, limits)]
    tokens = await claimed(aredis, 30)
    waits = await storm(workers, "render", tokens)
    holders = [t for t, w in zip(tokens, waits, strict=True) if w == 0.0]
    assert len(holders) == 3
    assert all(0 < w <= 1.0 * 1.1 for w in waits if w), "a full limit answers a short poll"
    waiting = [t for t, w in zip(tokens, waits, strict=True) if w]
    await workers[1].release("render", holders[0])
    again = await storm(workers, "render", waiting)
    assert again.count(0.0) == 1


async def test_a_dead_workers_slot_is_purged_when_its_hold_expires(
    aredis: aioredis.Redis, second_client: aioredis.Redis
) -> None:
    """A holder never released (its worker died, not yet reaped) stops counting after its hold."""
    limits = {"render": Limits(concurrent=1)}
    dead = RateLimiter(aredis, Q, limits, jitter=0.0)
    alive = RateLimiter(second_client, Q, limits, jitter=0.0)
    lost, waiting = await claimed(aredis, 2)
    assert await dead.acquire("render", lost, hold_seconds=0.4) == 0.0
    wait = await alive.acquire("render", waiting, 60)
    assert 0 < wait <= 0.4, "the wait ends when the dead holder expires"
    await asyncio.sleep(wait)
    assert await alive.acquire("render", waiting, 60) == 0.0
    assert await aredis.zrange(alive.keys("render")[1], 0, -1) == [waiting.encode()]


async def test_a_reaped_claim_frees_its_slot_before_expiry(aredis: aioredis.Redis) -> None:
    """Once a holder's token leaves the processing hash (reaped or finished), its slot is free."""
    limits = {"render": Limits(concurrent=1)}
    checking = RateLimiter(aredis, Q, limits)
    expiry_only = RateLimiter(aredis, Q, limits, check_processing=False)
    lost, waiting = await claimed(aredis, 2)
    assert await checking.acquire("render", lost, 600) == 0.0
    await aredis.hdel(PROCESSING, lost)
    assert await expiry_only.acquire("render", waiting, 600) > 0
    assert await checking.acquire("render", waiting, 600) == 0.0


async def test_unlimited_workflows_cost_no_redis_call(redis_url: str) -> None:
    """Acquire and release for a workflow without limits (or release without a concurrency
    limit) send nothing to Redis."""
    client = CountingRedis.from_url(redis_url)
    assert isinstance(client, CountingRedis)
    client.sent = []
    try:
        limiter = RateLimiter(client, Q, {"ai": Limits(per_second=5)})
        assert await limiter.acquire("echo", "w|1", 60) == 0.0
        await limiter.release("echo", "w|1")
        await limiter.release("ai", "w|1")
        assert client.sent == []
        assert await limiter.acquire("ai", "w|1", 60) == 0.0
        assert client.sent[-1] == "EVALSHA"
    finally:
        await client.aclose()


def test_limit_keys_share_the_queue_hash_slot() -> None:
    """Both limit keys and the processing hash sit in the queue's slot, so the script runs on
    Redis Cluster."""
    for queue in ("workflow:queue", "{jobs}:high"):
        limiter = RateLimiter(aioredis.Redis(), queue, {})
        slot = key_slot(queue.encode())
        names = (*limiter.keys("summarize"), QueueKeys.for_queue(queue).processing)
        assert {key_slot(name.encode()) for name in names} == {slot}


def test_parse_rate_limits_reads_objects_and_celery_shorthand() -> None:
    """The JSON format maps each workflow to its limits; "N/s|m|h" is accepted as in Celery."""
    text = '{"summarize": {"per_second": 10}, "render": {"concurrent": 3, "per_minute": 100},'
    text += ' "mail": "30/m"}'
    assert parse_rate_limits(text) == {
        "summarize": Limits(per_second=10),
        "render": Limits(per_minute=100, concurrent=3),
        "mail": Limits(per_minute=30),
    }
    assert parse_rate_limits("  ") == {}
    assert Limits(per_second=1, per_hour=2).windows() == [(1000, 1), (3_600_000, 2)]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"a": 5}',
        '{"a": {}}',
        '{"a": {"per_day": 5}}',
        '{"a": {"per_second": 0}}',
        '{"a": {"per_second": 2.5}}',
        '{"a": {"concurrent": true}}',
        '{"a": {"concurrent": "3"}}',
        '{"a": "10/d"}',
        '{"a": "x/s"}',
        '{" ": {"concurrent": 1}}',
    ],
)
def test_bad_rate_limits_name_the_variable(text: str) -> None:
    """Every malformed WORKER_RATE_LIMITS value is refused with an error naming the variable."""
    with pytest.raises(ConfigError) as caught:
        parse_rate_limits(text)
    assert caught.value.variable == "WORKER_RATE_LIMITS"
    assert "WORKER_RATE_LIMITS" in str(caught.value)


async def test_acquire_refuses_a_non_positive_hold(aredis: aioredis.Redis) -> None:
    """A hold of zero would free the slot at once, so acquire refuses it."""
    limiter = RateLimiter(aredis, Q, {"render": Limits(concurrent=1)})
    with pytest.raises(ValueError, match="hold_seconds"):
        await limiter.acquire("render", "w|1", 0)
