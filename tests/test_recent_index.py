"""The recent-jobs index `{Q}:recent` the engine keeps for the console, against a real Redis and
real workers: written by enqueue and by each acknowledged state change, trimmed to its bound."""

from __future__ import annotations

import asyncio
import json
from typing import cast

from redis.asyncio import Redis

from tests.conftest import WorkerFactory, make_settings, wait_for
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import Client, JobSpec

KEYS = QueueKeys.for_queue("workflow:queue")


async def _ids(aredis: Redis) -> list[str]:
    """The index, newest change first."""
    raw = cast("list[bytes]", await aredis.zrange(KEYS.recent, 0, -1, desc=True))
    return [i.decode() for i in raw]


async def _scores(aredis: Redis) -> dict[str, float]:
    pairs = cast(
        "list[tuple[bytes, float]]", await aredis.zrange(KEYS.recent, 0, -1, withscores=True)
    )
    return {member.decode(): score for member, score in pairs}


async def test_enqueue_indexes_jobs_and_trims_to_the_bound(redis_url: str, aredis: Redis) -> None:
    """Enqueued jobs are in the index, newest first, and it never holds more than
    WORKER_RECENT_JOBS ids: the oldest are dropped."""
    later = []
    async with Client(make_settings(redis_url, recent_jobs=5)) as client:
        first = await client.enqueue_many([JobSpec("echo", {"n": n}) for n in range(4)])
        for n in range(4, 8):
            # Scores are server milliseconds: apart by more than one, the order is certain.
            await asyncio.sleep(0.005)
            later.append(await client.enqueue("echo", {"n": n}))
    ids = await _ids(aredis)
    # One bulk call shares one server time, so any one of its jobs may be the survivor.
    assert ids[:4] == later[::-1]
    assert len(ids) == 5
    assert ids[4] in first


async def test_outcomes_move_a_job_to_the_front(
    start_worker: WorkerFactory, redis_url: str, aredis: Redis
) -> None:
    """A job that starts and ends after others were enqueued is listed before them again: the
    index is ordered by last change, so running and just-finished jobs come first."""
    settings = make_settings(redis_url)
    async with Client(settings) as client:
        old = await client.enqueue("echo", {"n": 0}, delay=0.5)
        newer = await client.enqueue("echo", {"n": 1}, delay=30)
        before = await _scores(aredis)
        assert before[newer] >= before[old]
        await start_worker()
        assert await client.result(old, timeout=10) == {"n": 0}
    after = await _scores(aredis)
    # It ran half a second after being enqueued: its last change is the newest.
    assert after[old] >= before[newer] + 400
    assert after[newer] == before[newer]
    assert await _ids(aredis) == [old, newer]


async def test_no_index_when_disabled(
    start_worker: WorkerFactory, redis_url: str, aredis: Redis
) -> None:
    """WORKER_RECENT_JOBS=0 writes no index, on enqueue or on acknowledgement."""
    await start_worker(recent_jobs=0)
    async with Client(make_settings(redis_url, recent_jobs=0)) as client:
        job_id = await client.enqueue("echo", {})
        assert await client.result(job_id, timeout=10) == {}
    assert not await aredis.exists(KEYS.recent)


async def test_hand_pushed_messages_are_indexed_when_their_records_are_written(
    start_worker: WorkerFactory, redis_url: str, aredis: Redis
) -> None:
    """Messages pushed without the client are indexed once a worker writes their record: the
    one with an id under it, the one without under the id the worker gave it; every indexed id
    has a status record."""
    await aredis.lpush(KEYS.queue, json.dumps({"workflow": "echo", "payload": {}}))
    await aredis.lpush(KEYS.queue, json.dumps({"id": "by-hand", "workflow": "echo", "payload": {}}))
    await start_worker()
    await wait_for(lambda: _finished(aredis))
    ids = await _ids(aredis)
    assert len(ids) == 2
    assert "by-hand" in ids
    for job_id in ids:
        assert await aredis.hget(KEYS.job(job_id), "state") == b"success"


async def _finished(aredis: Redis) -> bool:
    ids = await _ids(aredis)
    states = [await aredis.hget(KEYS.job(job_id), "state") for job_id in ids]
    return len(ids) == 2 and all(state == b"success" for state in states)
