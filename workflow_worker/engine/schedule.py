"""`WORKER_SCHEDULE`: periodic workflow entries, parsed and validated. Pure, no I/O.

The format and the missed-tick policies are described in docs/periodic.md.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workflow_worker.engine.cron import CronError, CronExpr
from workflow_worker.errors import ConfigError

__all__ = ["MISSED_POLICIES", "ScheduleEntry", "parse_schedule"]

VARIABLE = "WORKER_SCHEDULE"
MISSED_POLICIES = ("skip", "catch_up")
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
