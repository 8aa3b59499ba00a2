"""The step scripts against a real Redis: a record needs the claim, steps belong to one enqueue."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from bench.faults.proxy import FaultProxy, Rule
from tests.servers import RedisServer
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.scripts import lua_source
from workflow_worker.engine.stepstore import StepStore
from workflow_worker.workflows.steps import _retrying

KEYS = QueueKeys.for_queue("workflow:queue")
TOKEN = "worker-a|1"
RECORD_SHA = hashlib.sha1(lua_source("step_record").encode(), usedforsecurity=False).hexdigest()


@pytest.fixture
async def store(aredis: aioredis.Redis) -> AsyncIterator[StepStore]:
    """The step scripts on the test's client; its connection of its own closed afterwards."""
    opened = StepStore(aredis)
    yield opened
    await opened.close()


async def _claim(aredis: aioredis.Redis, job_id: str, enqueue_call: str = "call-1") -> None:
    await aredis.hset(KEYS.processing, TOKEN, '{"id":"' + job_id + '","workflow":"w"}')
    await aredis.hset(KEYS.job(job_id), mapping={"state": "running", "enqueue_call": enqueue_call})
    await aredis.expire(KEYS.job(job_id), 100)


async def test_a_worker_whose_claim_was_taken_back_cannot_record_a_step(
    aredis: aioredis.Redis, store: StepStore
) -> None:
    """With the claim token gone from the processing hash (reaped), the record script writes
    nothing (no step, no progress) and says so."""
    await _claim(aredis, "j1")
    await aredis.hdel(KEYS.processing, TOKEN)
    held = await store.record(KEYS, TOKEN, "j1", "a#1", "1", life_s=100, progress=True)
    assert held is False
    assert await aredis.exists(KEYS.steps("j1")) == 0
    assert await aredis.hget(KEYS.job("j1"), "steps_done") is None


async def test_a_held_claim_records_once_with_progress_and_a_life_at_least_the_records(
    aredis: aioredis.Redis, store: StepStore
) -> None:
    """A step recorded under a held claim is readable in one load, keeps its first result if
    sent again, writes the progress fields, and lives no shorter than the status record, in
    the status record's Cluster slot."""
    await _claim(aredis, "j2")
    assert await store.record(KEYS, TOKEN, "j2", "a#1", '{"x":1}', life_s=500, progress=True)
    assert await store.record(KEYS, TOKEN, "j2", "a#1", '{"x":2}', life_s=500, progress=True)
    assert await store.record(KEYS, TOKEN, "j2", "b#1", "2", life_s=500, progress=True)
    assert await store.load(KEYS, "j2") == {b"a#1": b'{"x":1}', b"b#1": b"2"}
    status = await aredis.hgetall(KEYS.job("j2"))
    assert status[b"steps_done"] == b"2"
    assert status[b"last_step"] == b"b#1"
    assert await aredis.ttl(KEYS.steps("j2")) >= await aredis.ttl(KEYS.job("j2"))
    assert key_slot(KEYS.steps("j2").encode()) == key_slot(KEYS.job("j2").encode())


async def test_steps_of_an_earlier_enqueue_are_not_read_and_are_replaced(
    aredis: aioredis.Redis, store: StepStore
) -> None:
    """When the status record names another enqueue call than the steps hash, the load returns
    nothing and the next record starts the hash afresh."""
    await _claim(aredis, "j3", enqueue_call="first")
    assert await store.record(KEYS, TOKEN, "j3", "a#1", "1", life_s=100, progress=True)
    await aredis.hset(KEYS.job("j3"), "enqueue_call", "second")
    assert await store.load(KEYS, "j3") == {}
    assert await store.record(KEYS, TOKEN, "j3", "b#1", "2", life_s=100, progress=True)
    assert await store.load(KEYS, "j3") == {b"b#1": b"2"}


async def test_a_record_can_write_the_given_id_into_the_claimed_message(
    aredis: aioredis.Redis, store: StepStore
) -> None:
    """The record of a job whose id was given at claim replaces the claimed text with the
    text carrying that id (what a crash re-delivery then puts back), and writes no status."""
    await aredis.hset(KEYS.processing, TOKEN, '{"workflow":"w"}')
    text = '{"id":"gen","workflow":"w"}'
    held = await store.record(
        KEYS, TOKEN, "gen", "a#1", "1", life_s=100, progress=False, claimed_text=text
    )
    assert held
    assert await aredis.hget(KEYS.processing, TOKEN) == text.encode()
    assert await aredis.exists(KEYS.job("gen")) == 0


async def test_the_load_brings_the_servers_clock_with_the_steps(
    aredis: aioredis.Redis, store: StepStore
) -> None:
    """The load returns the server's time beside the steps (found or not), so sleeps are
    timed on the clock every worker shares, and the steps themselves carry no clock field."""
    secs, micros = await aredis.time()
    found, now = await store.load_timed(KEYS, "nothing-here")
    assert found == {}
    assert secs + micros / 1e6 <= now < secs + micros / 1e6 + 5
    await _claim(aredis, "j4")
    assert await store.record(KEYS, TOKEN, "j4", "a#1", "1", life_s=100, progress=True)
    found, later = await store.load_timed(KEYS, "j4")
    assert found == {b"a#1": b"1"}
    assert later >= now


async def test_a_step_record_refused_while_redis_loads_its_data_is_sent_again(
    aredis: aioredis.Redis, redis_server: RedisServer
) -> None:
    """A record answered `LOADING` (a restarted Redis still reading its data set: a refusal
    that passes by itself) is sent again, as after a connection error, instead of failing the
    attempt and running the step again; a refusal caused by the call itself is not."""
    await _claim(aredis, "jl")
    with FaultProxy(redis_server.port) as proxy:
        client = aioredis.Redis(port=proxy.port)
        store = StepStore(client)
        try:
            proxy.arm(Rule("EVALSHA", "loading", arg=RECORD_SHA, times=2))
            assert await _retrying(
                lambda: store.record(KEYS, TOKEN, "jl", "a#1", "1", life_s=100, progress=True),
                "record step 'a#1'",
            )
            assert [e[1] for e in proxy.events] == ["loading", "loading"]
            assert await store.load(KEYS, "jl") == {b"a#1": b"1"}
            with pytest.raises(redis.exceptions.ResponseError):
                await _retrying(lambda: client.incr(KEYS.job("jl")), "a call on the wrong type")
        finally:
            await store.close()
            await client.aclose()
