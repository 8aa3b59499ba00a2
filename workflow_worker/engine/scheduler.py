"""Periodic workflows (cron) run by every worker replica, each tick enqueued once fleet-wide.

There is no Beat process. Every replica evaluates every schedule about once a second; a tick is
enqueued by `lua/cron_tick-3.lua`, which compares-and-sets the schedule's last settled tick
(`{Q}:cron:<name>`) and pushes the job in the same atomic step, so replicas racing on one tick
enqueue it once. The format of `WORKER_SCHEDULE` and the missed-tick policies are described in
docs/periodic.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from workflow_worker.engine.cron import CronExpr
from workflow_worker.engine.job import Job, State
from workflow_worker.engine.keys import QueueKeys
from workflow_worker.engine.schedule import ScheduleEntry
from workflow_worker.engine.scripts import lua_source

__all__ = ["Scheduler", "latest_tick"]

log = logging.getLogger("workflow_worker.scheduler")
LATE_GRACE_SECONDS = 60.0


def _at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def latest_tick(expr: CronExpr, after: float, now: float) -> int | None:
    """The last tick in (after, now] as unix seconds; looks back in growing windows."""
    window = 120.0
    while True:
        low = max(after, now - window)
        latest = None
        for tick in expr.ticks_between(_at(low), _at(now)):
            latest = tick
        if latest is not None:
            return int(latest.timestamp())
        if low <= after:
            return None
        window *= 16


class Scheduler:
    """Enqueues the ticks of `entries` onto one queue; run it in every replica."""

    def __init__(
        self,
        client: Any,
        queue_name: str,
        entries: Iterable[ScheduleEntry],
        result_ttl: int,
        max_attempts: int,
        clock: Callable[[], float] = time.time,
        *,
        grace: float = LATE_GRACE_SECONDS,
        on_redis_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.client = client
        self.keys = QueueKeys.for_queue(queue_name)
        self.entries = list(entries)
        self.result_ttl = result_ttl
        self.max_attempts = max_attempts
        self.clock = clock
        self.grace = grace
        self.on_redis_error = on_redis_error
        self._script = client.register_script(lua_source("cron_tick"))
        self._due: dict[str, float] = {}  # per entry: no Redis call before this unix time

    async def run(self, stop: asyncio.Event) -> None:
        """Settle due ticks about once a second (just after each second) until `stop` is set."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("scheduler round failed")
            delay = 1.0 - self.clock() % 1.0 + 0.01
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def run_once(self, now: float | None = None) -> int:
        """Settle every entry's due ticks at `now` (unix seconds); returns jobs enqueued."""
        at = self.clock() if now is None else now
        enqueued = 0
        for entry in self.entries:
            try:
                enqueued += await self._settle(entry, at)
            except (RedisError, OSError) as exc:
                self._due.pop(entry.name, None)
                log.warning("schedule %s: redis call failed: %s", entry.name, exc)
                if self.on_redis_error is not None:
                    self.on_redis_error("cron", exc)
        return enqueued

    def marker(self, entry: ScheduleEntry) -> str:
        """The key holding the entry's last settled tick."""
        return self.keys.cron_prefix + entry.name

    async def _settle(self, entry: ScheduleEntry, now: float) -> int:
        due = self._due.get(entry.name)
        if due is not None and now < due:
            return 0
        last = await self._last_settled(entry, now)
        if last is None:
            self._due[entry.name] = entry.cron.next_after(_at(now)).timestamp()
            return 0
        tick = latest_tick(entry.cron, last, now)
        if tick is None:
            self._due[entry.name] = entry.cron.next_after(_at(last)).timestamp()
            return 0
        enqueued = await self._enqueue(entry, tick, last, now)
        self._due[entry.name] = entry.cron.next_after(_at(tick)).timestamp()
        return enqueued

    async def _last_settled(self, entry: ScheduleEntry, now: float) -> float | None:
        """The stored last tick; None on first start, after storing `now` (nothing fires)."""
        key = self.marker(entry)
        raw = await self.client.get(key)
        if raw is None:
            # NX: when replicas start together, the first one's instant stands; a later
            # instant could hide a tick that another replica is about to enqueue.
            if await self.client.set(key, int(now), nx=True):
                log.info("schedule %s: first start, no tick enqueued", entry.name)
                return None
            raw = await self.client.get(key)
        try:
            return float(raw)
        except (TypeError, ValueError):
            log.error("schedule %s: %s holds %r, not a time; starting over", entry.name, key, raw)
            await self.client.set(key, int(now))
            return None

    async def _enqueue(self, entry: ScheduleEntry, tick: int, last: float, now: float) -> int:
        on_time = now - tick <= self.grace
        missed = not on_time or entry.cron.next_after(_at(last)).timestamp() < tick
        push = on_time or entry.missed == "catch_up"
        job_id = f"cron:{entry.name}:{tick}"
        args: list[str | int | float] = [tick, "", self.result_ttl]
        if push:
            args[1], status = self._job(entry, job_id, tick, last, now)
            args += [part for pair in status.items() for part in pair]
        keys = [self.marker(entry), self.keys.queue, self.keys.job(job_id)]
        settled = bool(await self._script(keys=keys, args=args))
        if settled and missed:
            what = "enqueued one job for them" if push else "skipped them"
            log.warning(
                "schedule %s: ticks missed since %s; %s",
                entry.name,
                _at(last).isoformat(),
                what,
                extra={"schedule": entry.name, "tick": tick, "policy": entry.missed},
            )
        elif settled:
            log.info("schedule %s: enqueued %s", entry.name, job_id)
        return int(settled and push)

    def _job(
        self, entry: ScheduleEntry, job_id: str, tick: int, last: float, now: float
    ) -> tuple[str, dict[str, str]]:
        job = Job(
            workflow=entry.workflow,
            payload=entry.payload,
            id=job_id,
            enqueued_at=now,
            attempt=1,
            max_attempts=entry.max_attempts or self.max_attempts,
            timeout=entry.timeout,
            extra={"schedule": {"name": entry.name, "tick": tick, "previous": int(last)}},
        )
        status = {
            "state": State.QUEUED.value,
            "workflow": entry.workflow,
            "attempt": "1",
            "max_attempts": str(job.max_attempts),
            "queue": self.keys.queue,
            "enqueued_at": f"{now:.6f}",
            "schedule": entry.name,
        }
        return job.encode(), status
