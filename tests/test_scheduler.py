"""Periodic workflows against a real Redis: config, exactly-once ticks, missed-tick policies,
time zones, and surviving Redis errors."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import wait_for
from workflow_worker.engine.job import decode_job
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.schedule import ScheduleEntry, parse_schedule
from workflow_worker.engine.scheduler import Scheduler
from workflow_worker.errors import ConfigError
from workflow_worker.local.devstack import RedisServer

Q = "workflow:queue"
KEYS = QueueKeys.for_queue(Q)
T0 = 1_718_000_000 - 1_718_000_000 % 3600  # an hour boundary (2024-06-10 06:00 UTC)


def entries(**fields: Any) -> list[ScheduleEntry]:
    base: dict[str, Any] = {"name": "tick", "cron": "* * * * *", "workflow": "echo"}
    base.update(fields)
    return parse_schedule(json.dumps([base]))


def scheduler(client: aioredis.Redis, items: list[ScheduleEntry], **kw: Any) -> Scheduler:
    return Scheduler(client, Q, items, result_ttl=3600, max_attempts=3, **kw)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def stored_tick(client: aioredis.Redis, name: str = "tick") -> int:
    raw = await client.get(KEYS.cron_prefix + name)
    assert raw is not None
    return int(raw)


async def queued_ids(client: aioredis.Redis) -> list[str]:
    """Ids on the queue, oldest first."""
    return [decode_job(raw).id for raw in reversed(await client.lrange(Q, 0, -1))]


def test_parse_schedule_reads_entries_and_defaults() -> None:
    """A JSON list becomes entries with defaults; an empty value means no schedules."""
    text = json.dumps(
        [
            {"name": "nightly-report", "cron": "0 3 * * *", "workflow": "report"},
            {
                "name": "sync.v2",
                "cron": "@hourly",
                "workflow": "sync",
                "payload": {"full": True},
                "timezone": "Europe/Paris",
                "missed": "catch_up",
                "max_attempts": 5,
                "timeout": 30,
            },
        ]
    )
    nightly, sync = parse_schedule(text)
    assert (nightly.name, nightly.workflow, nightly.payload) == ("nightly-report", "report", {})
    assert (nightly.timezone, nightly.missed, nightly.max_attempts) == ("UTC", "skip", None)
    assert (sync.timezone, sync.missed, sync.max_attempts, sync.timeout) == (
        "Europe/Paris",
        "catch_up",
        5,
        30.0,
    )
    assert sync.payload == {"full": True}
    assert parse_schedule("") == parse_schedule("  ") == parse_schedule("[]") == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{", "not valid JSON"),
        ('{"name": "x"}', "got a JSON dict, not a list"),
        ("[1]", "entry 0: must be a JSON object"),
        ('[{"name": "a", "cron": "* * * * *"}]', "entry 0 ('a'): missing field(s) 'workflow'"),
        ('[{"name": "a", "cron": "* * * * *", "workflow": "w", "misssed": "skip"}]', "'misssed'"),
        ('[{"name": "a b", "cron": "* * * * *", "workflow": "w"}]', "'name' must be"),
        ('[{"name": "a", "cron": "61 * * * *", "workflow": "w"}]', "minute field '61'"),
        ('[{"name": "a", "cron": "* * * *", "workflow": "w"}]', "expected 5 fields"),
        ('[{"name": "a", "cron": 5, "workflow": "w"}]', "'cron' must be a non-empty string"),
        ('[{"name": "a", "cron": "@daily", "workflow": ""}]', "'workflow' must be a non-empty"),
        ('[{"name": "a", "cron": "@daily", "workflow": "w", "timezone": "Mars/Base"}]', "IANA"),
        ('[{"name": "a", "cron": "@daily", "workflow": "w", "missed": "all"}]', "'missed' must"),
        ('[{"name": "a", "cron": "@daily", "workflow": "w", "payload": []}]', "'payload' must"),
        ('[{"name": "a", "cron": "@daily", "workflow": "w", "max_attempts": 0}]', "max_attempts"),
        ('[{"name": "a", "cron": "@daily", "workflow": "w", "timeout": -1}]', "'timeout' must"),
        (
            '[{"name": "a", "cron": "@daily", "workflow": "w"},'
            ' {"name": "a", "cron": "@hourly", "workflow": "v"}]',
            "names must be unique, repeated: a",
        ),
    ],
)
def test_bad_schedules_raise_config_error_naming_the_variable(value: str, reason: str) -> None:
    """Each kind of bad WORKER_SCHEDULE value gives a ConfigError naming it and saying why."""
    with pytest.raises(ConfigError) as info:
        parse_schedule(value)
    assert info.value.variable == "WORKER_SCHEDULE"
    message = str(info.value)
    assert message.startswith("WORKER_SCHEDULE=")
    assert reason in message


async def test_first_start_stores_the_instant_and_enqueues_nothing(
    aredis: aioredis.Redis,
) -> None:
    """Deploying a schedule does not fire it; the next tick after first start does."""
    s = scheduler(aredis, entries(cron="*/5 * * * *"))
    assert await s.run_once(T0 + 0.2) == 0  # exactly on a tick, but the first start
    assert await stored_tick(aredis) == T0
    assert await aredis.llen(Q) == 0
    assert await s.run_once(T0 + 299) == 0
    assert await s.run_once(T0 + 300.4) == 1
    assert await queued_ids(aredis) == [f"cron:tick:{T0 + 300}"]


async def test_enqueued_job_is_a_valid_envelope_with_a_queued_record(
    aredis: aioredis.Redis,
) -> None:
    """The tick's job decodes, has the deterministic id, and has a queued status record."""
    items = entries(name="report", workflow="report", payload={"kind": "daily"}, max_attempts=7)
    s = scheduler(aredis, items)
    await s.run_once(T0 - 30)
    assert await s.run_once(T0 + 0.5) == 1
    job = decode_job(await aredis.lindex(Q, 0) or "")
    assert job.id == f"cron:report:{T0}"
    assert (job.workflow, job.payload, job.attempt, job.max_attempts) == (
        "report",
        {"kind": "daily"},
        1,
        7,
    )
    assert job.enqueued_at == T0 + 0.5
    assert job.extra["schedule"] == {"name": "report", "tick": T0, "previous": T0 - 30}
    raw = await aredis.hgetall(KEYS.job(job.id))
    record = {text(k): text(v) for k, v in raw.items()}
    assert record["state"] == "queued"
    assert (record["workflow"], record["attempt"], record["max_attempts"]) == ("report", "1", "7")
    assert (record["queue"], float(record["enqueued_at"])) == (Q, T0 + 0.5)
    assert 0 < await aredis.ttl(KEYS.job(job.id)) <= 3600


async def test_two_schedulers_racing_enqueue_each_tick_once(redis_url: str) -> None:
    """Two replicas (two connections) settling the same ticks concurrently enqueue each once."""
    a = aioredis.Redis.from_url(redis_url)
    b = aioredis.Redis.from_url(redis_url)
    try:
        items = entries() + entries(name="five", cron="*/5 * * * *")
        sa, sb = scheduler(a, items), scheduler(b, items)
        counts = [0, 0]
        for minute in range(200):
            now = T0 + 60 * minute + 0.25
            later = now + (minute % 3) * 0.3  # replicas' clocks differ a little
            if minute % 2:
                got_a, got_b = await asyncio.gather(sa.run_once(now), sb.run_once(later))
            else:
                got_b, got_a = await asyncio.gather(sb.run_once(later), sa.run_once(now))
            counts = [counts[0] + got_a, counts[1] + got_b]
        ids = await queued_ids(a)
    finally:
        await a.aclose()
        await b.aclose()
    every = [f"cron:tick:{T0 + 60 * m}" for m in range(1, 200)]
    five = [f"cron:five:{T0 + 60 * m}" for m in range(5, 200, 5)]
    assert sorted(ids) == sorted(every + five)
    assert sum(counts) == len(ids)
    assert min(counts) > 0, counts  # both replicas won some ticks: the race was real


async def test_a_tick_not_newer_than_the_stored_one_changes_nothing(
    aredis: aioredis.Redis,
) -> None:
    """A replica whose clock is behind cannot enqueue a tick older than the stored one."""
    ahead, behind = scheduler(aredis, entries()), scheduler(aredis, entries())
    await ahead.run_once(T0 - 1)
    assert await ahead.run_once(T0 + 121) == 1
    assert await behind.run_once(T0 + 61) == 0
    assert await queued_ids(aredis) == [f"cron:tick:{T0 + 120}"]


async def test_skip_policy_drops_missed_ticks(aredis: aioredis.Redis) -> None:
    """After a gap, `skip` enqueues nothing for ticks older than the grace, then resumes."""
    s = scheduler(aredis, entries(cron="*/5 * * * *", missed="skip"))
    await s.run_once(T0 + 1)
    assert await s.run_once(T0 + 32 * 60) == 0  # ticks at 5..30 all missed
    assert await stored_tick(aredis) == T0 + 30 * 60
    assert await s.run_once(T0 + 35 * 60 + 0.5) == 1
    assert await queued_ids(aredis) == [f"cron:tick:{T0 + 35 * 60}"]
    fresh = scheduler(aredis, entries(cron="*/5 * * * *", missed="skip"))
    assert await fresh.run_once(T0 + 60 * 60 + 20) == 1  # 40..55 missed, 60 is on time
    assert await queued_ids(aredis) == [f"cron:tick:{T0 + 35 * 60}", f"cron:tick:{T0 + 3600}"]


async def test_catch_up_policy_enqueues_one_job_for_missed_ticks(aredis: aioredis.Redis) -> None:
    """After a gap, `catch_up` enqueues one job for all missed ticks, then continues."""
    s = scheduler(aredis, entries(cron="*/5 * * * *", missed="catch_up"))
    await s.run_once(T0 + 1)
    assert await s.run_once(T0 + 32 * 60) == 1
    assert await s.run_once(T0 + 33 * 60) == 0
    assert await s.run_once(T0 + 35 * 60 + 0.5) == 1
    raw = list(reversed(await aredis.lrange(Q, 0, -1)))
    jobs = [decode_job(r) for r in raw]
    assert [j.id for j in jobs] == [f"cron:tick:{T0 + 30 * 60}", f"cron:tick:{T0 + 35 * 60}"]
    assert jobs[0].extra["schedule"]["previous"] == T0 + 1
    assert jobs[1].extra["schedule"]["previous"] == T0 + 30 * 60


async def test_timezones_and_dst_decide_the_tick(aredis: aioredis.Redis) -> None:
    """Ticks follow the entry's zone: a skipped 02:30 fires at the jump, a repeated 01:30 once."""
    items = [
        *entries(name="tokyo", cron="0 9 * * *", timezone="Asia/Tokyo"),
        *entries(name="spring", cron="30 2 * * *", timezone="America/New_York"),
        *entries(name="fall", cron="30 1 * * *", timezone="America/New_York"),
        *entries(name="half", cron="*/30 * * * *", timezone="America/New_York"),
    ]
    s = scheduler(aredis, items)
    await s.run_once(ts(2024, 3, 9, 12))
    for hour, minute in ((0, 0), (6, 30), (7, 0)):
        await s.run_once(ts(2024, 3, 10, hour, minute) + 0.5)
    ids = set(await queued_ids(aredis))
    assert f"cron:tokyo:{int(ts(2024, 3, 10, 0))}" in ids
    assert f"cron:spring:{int(ts(2024, 3, 10, 7))}" in ids  # 03:00 EDT: the jump
    assert f"cron:half:{int(ts(2024, 3, 10, 6, 30))}" in ids  # 01:30 EST
    assert f"cron:half:{int(ts(2024, 3, 10, 7))}" in ids  # 03:00 EDT (02:00, 02:30 skipped)
    await aredis.delete(Q)
    s = scheduler(aredis, items)
    await s.run_once(ts(2024, 11, 3, 5, 0) - 10)
    for hour in (5, 6):
        await s.run_once(ts(2024, 11, 3, hour, 30) + 0.5)  # 01:30 EDT, then 01:30 EST
    ids = set(await queued_ids(aredis))
    assert {i for i in ids if i.startswith("cron:fall:")} == {
        f"cron:fall:{int(ts(2024, 11, 3, 5, 30))}"
    }
    half = {i for i in ids if i.startswith("cron:half:")}
    assert half == {f"cron:half:{int(ts(2024, 11, 3, h, 30))}" for h in (5, 6)}


async def test_a_redis_error_on_one_entry_is_logged_and_others_continue(
    aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis error (wrong key type) is logged and reported; the other entries still fire."""
    errors: list[str] = []
    items = entries(name="broken") + entries(name="fine")
    s = scheduler(aredis, items, on_redis_error=lambda op, exc: errors.append(op))
    await aredis.hset(KEYS.cron_prefix + "broken", "x", "1")
    await s.run_once(T0 - 1)
    with caplog.at_level(logging.WARNING, logger="workflow_worker.scheduler"):
        assert await s.run_once(T0 + 0.5) == 1
    assert errors == ["cron", "cron"]
    assert any("schedule broken: redis call failed" in r.getMessage() for r in caplog.records)
    await aredis.delete(KEYS.cron_prefix + "broken")
    await s.run_once(T0 + 1)
    assert await s.run_once(T0 + 60.5) == 2


async def test_the_loop_survives_redis_going_away(tmp_path: Path) -> None:
    """`run` keeps going while Redis is down and enqueues the tick once it is back."""
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    client = aioredis.Redis.from_url(server.url, socket_timeout=2)
    now = [T0 - 30.0]
    errors: list[BaseException] = []
    s = scheduler(
        client, entries(), clock=lambda: now[0], on_redis_error=lambda _o, e: errors.append(e)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(s.run(stop))
    try:
        await wait_for(lambda: client.exists(KEYS.cron_prefix + "tick"))
        server.stop()
        now[0] = T0 + 0.5
        await wait_for(lambda: len(errors) >= 2)
        server.start()
        # A fresh client for the test's own reads: the scheduler's pool still holds connections
        # to the old server process, which only the scheduler should have to survive.
        async with aioredis.Redis.from_url(server.url) as probe:
            await wait_for(lambda: probe.llen(Q), timeout=15)
            assert await queued_ids(probe) == [f"cron:tick:{T0}"]
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await client.aclose()
        server.stop()
