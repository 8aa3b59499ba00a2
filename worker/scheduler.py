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
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redis.exceptions import RedisError

from worker.cron import CronError, CronExpr
from worker.job import Job, State
from worker.keys import QueueKeys
from worker.scripts import lua_source
from worker.settings import ConfigError

__all__ = ["MISSED_POLICIES", "ScheduleEntry", "Scheduler", "parse_schedule"]

log = logging.getLogger("worker.scheduler")
VARIABLE = "WORKER_SCHEDULE"
MISSED_POLICIES = ("skip", "catch_up")
LATE_GRACE_SECONDS = 60.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_REQUIRED = ("name", "cron", "workflow")
_OPTIONAL = ("payload", "timezone", "missed", "max_attempts", "timeout")
_FORMAT = (
    'a JSON list of schedule entries {"name", "cron", "workflow", optional "payload", '
    '"timezone", "missed" ("skip" or "catch_up"), "max_attempts", "timeout"}'
)


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One periodic workflow: when (`cron`, in its time zone), what, and the missed-tick policy."""

    name: str
    cron: CronExpr
    workflow: str
    payload: dict[str, Any] = field(default_factory=dict)
    missed: str = "skip"
    max_attempts: int | None = None
    timeout: float | None = None

    @property
    def timezone(self) -> str:
        return str(self.cron.tz)


class _Bad(Exception):
    """A problem with one entry; `parse_schedule` turns it into a ConfigError."""


def parse_schedule(text: str) -> list[ScheduleEntry]:
    """Parse a `WORKER_SCHEDULE` value; an empty value means no schedules."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _config_error(text, f"not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise _config_error(text, f"got a JSON {type(data).__name__}, not a list")
    entries = []
    for index, item in enumerate(data):
        try:
            entries.append(_entry(item))
        except _Bad as exc:
            label = f"entry {index}"
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                label += f" ({item['name']!r})"
            raise _config_error(text, f"{label}: {exc}") from None
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _config_error(text, f"names must be unique, repeated: {', '.join(duplicates)}")
    return entries


def _config_error(text: str, problem: str) -> ConfigError:
    shown = text if len(text) <= 300 else text[:300] + "..."
    return ConfigError(VARIABLE, shown, f"{_FORMAT}; {problem}")


def _entry(item: object) -> ScheduleEntry:
    if not isinstance(item, dict):
        raise _Bad(f"must be a JSON object, got {type(item).__name__}")
    unknown = sorted(set(item) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _Bad(f"unknown field(s) {', '.join(map(repr, unknown))}")
    missing = [k for k in _REQUIRED if k not in item]
    if missing:
        raise _Bad(f"missing field(s) {', '.join(map(repr, missing))}")
    name, workflow = _text(item, "name"), _text(item, "workflow")
    if not _NAME.fullmatch(name):
        raise _Bad("'name' must be 1-100 letters, digits, '_', '.' or '-', starting alphanumeric")
    payload = item.get("payload", {})
    if not isinstance(payload, dict):
        raise _Bad("'payload' must be a JSON object")
    missed = item.get("missed", "skip")
    if missed not in MISSED_POLICIES:
        raise _Bad(f"'missed' must be one of {', '.join(MISSED_POLICIES)}, got {missed!r}")
    return ScheduleEntry(
        name=name,
        cron=_cron(item),
        workflow=workflow,
        payload=payload,
        missed=missed,
        max_attempts=_max_attempts(item.get("max_attempts")),
        timeout=_timeout(item.get("timeout")),
    )


def _text(item: dict[str, Any], key: str) -> str:
    value = item[key]
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{key!r} must be a non-empty string")
    return value.strip()


def _cron(item: dict[str, Any]) -> CronExpr:
    zone = item.get("timezone", "UTC")
    try:
        tz = ZoneInfo(zone) if isinstance(zone, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
    if tz is None:
        raise _Bad(f"'timezone' must be an IANA time zone name like Europe/Paris, got {zone!r}")
    try:
        return CronExpr.parse(_text(item, "cron"), tz)
    except CronError as exc:
        raise _Bad(f"'cron': {exc}") from None


def _max_attempts(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad(f"'max_attempts' must be a positive integer, got {value!r}")
    return value


def _timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"'timeout' must be a positive number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise _Bad(f"'timeout' must be a positive number of seconds, got {value!r}")
    return float(value)


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
