"""Periodic workflows inside real workers: one job per tick for the fleet, and config errors."""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from tests.conftest import WorkerFactory, make_settings, run_cli, wait_for
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.producer.client import Client

KEYS = QueueKeys.for_queue("workflow:queue")
SCHEDULE = json.dumps(
    [{"name": "minutely", "cron": "* * * * *", "workflow": "echo", "missed": "catch_up"}]
)


async def test_two_workers_enqueue_a_missed_tick_once(
    start_worker: WorkerFactory, redis_url: str, aredis: aioredis.Redis
) -> None:
    """Two replicas catching up on missed ticks enqueue one job, which runs once."""
    await aredis.set(KEYS.cron_prefix + "minutely", int(time.time()) - 180)
    await start_worker(schedule=SCHEDULE)
    await start_worker(schedule=SCHEDULE)
    async with Client(make_settings(redis_url)) as client:
        ids = await wait_for(lambda: aredis.keys(KEYS.job("cron:minutely:*")), timeout=10)
        assert len(ids) == 1
        job_id = ids[0].decode().removeprefix(KEYS.job_prefix)
        await client.result(job_id, timeout=10)
        record = await client.status(job_id)
        assert record is not None
        assert record["state"] == "success"
    assert len(await aredis.keys(KEYS.job("cron:minutely:*"))) == 1


def test_schedule_errors_stop_the_worker_at_start_up(redis_url: str) -> None:
    """A bad expression, or a schedule naming an unknown workflow, exits 2 naming the setting."""
    bad_cron = json.dumps([{"name": "x", "cron": "0 25 * * *", "workflow": "echo"}])
    unknown = json.dumps([{"name": "x", "cron": "@hourly", "workflow": "nope"}])
    for schedule, needle in ((bad_cron, "hour field"), (unknown, "'nope'")):
        proc = run_cli(redis_url, "run", timeout=30, WORKER_HTTP_PORT="0", WORKER_SCHEDULE=schedule)
        assert proc.returncode == 2, proc.stderr
        assert "WORKER_SCHEDULE" in proc.stderr
        assert needle in proc.stderr
