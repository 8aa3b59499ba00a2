"""The step scripts against a real Redis: a record needs the claim, steps belong to one enqueue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.stepstore import StepStore

KEYS = QueueKeys.for_queue("workflow:queue")
TOKEN = "worker-a|1"


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
