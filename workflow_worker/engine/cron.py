"""Cron expressions: parse the standard 5 fields and find the next tick. Pure, no I/O.

Fields are minute, hour, day of month, month, day of week, with `*`, lists (`1,15`), ranges
(`MON-FRI`), steps (`*/5`, `10-50/10`, `5/15` = `5-59/15`), month and weekday names and
0 or 7 for Sunday; plus `@hourly @daily @midnight @weekly @monthly @yearly @annually`.
As in Vixie/ISC cron, when both day fields are restricted (neither starts with `*`) a day
matches if either field does; otherwise both must.

Ticks are wall-clock times in the expression's time zone (default UTC). Across daylight
saving changes the rule is ISC cron's (see docs/periodic.md):

* a *fixed-time* expression (neither minute nor hour starts with `*`) fires once per matching
  wall-clock time: a time skipped by a spring-forward jump fires at the instant of the jump,
  and a time that happens twice in a fall-back hour fires the first time only;
* a *wildcard* expression (minute or hour starts with `*`) follows the clock: skipped times
  do not fire, and times in the repeated hour fire in both passes.
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import NamedTuple

__all__ = ["CronError", "CronExpr"]

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
WEEKDAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


class _Field(NamedTuple):
    name: str
    lo: int
    hi: int  # as written: day of week accepts 7 and folds it onto 0 (Sunday)
    names: dict[str, int]


FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, MONTHS),
    _Field("day-of-week", 0, 7, WEEKDAYS),
)
MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MINUTE = timedelta(minutes=1)
SEARCH_YEARS = 30  # any valid expression matches within 8 years (29 February)


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message names the field and the reason."""

    def __init__(self, text: str, field: str | None, reason: str, part: str = "") -> None:
        where = f"{field} field {part!r}: " if field else ""
        super().__init__(f"cron expression {text!r}: {where}{reason}")
        self.field = field
        self.reason = reason


def _number(token: str, field: _Field) -> int:
    lo, hi, names = field.lo, field.hi, field.names
    value = names.get(token.upper())
    if value is None:
        if not token.isdigit():
            kinds = "a number or a name like " + next(iter(names)) if names else "a number"
            raise ValueError(f"{token!r} is not {kinds}")
        value = int(token)
    if not lo <= value <= hi:
        raise ValueError(f"{value} is out of range {lo}-{hi}")
    return value


def _item(item: str, field: _Field) -> range:
    lo, hi = field.lo, field.hi
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ValueError(f"step {step_text!r} in {item!r} is not a positive number")
        step = int(step_text)
    if base == "*":
        return range(lo, hi + 1, step)
    first_text, dash, last_text = base.partition("-")
    first = _number(first_text, field)
    last = _number(last_text, field) if dash else (hi if slash else first)
    if first > last:
        raise ValueError(f"range {item!r} starts after it ends")
    return range(first, last + 1, step)


def _field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"empty list item in {text!r}")
        values.update(_item(item, field))
    if field.name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A parsed expression bound to a time zone; build it with `CronExpr.parse`."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday
    days_or: bool  # both day fields restricted: a day matches if either does
    fixed_time: bool  # neither minute nor hour starts with `*` (see the DST rule above)
    tz: tzinfo

    @classmethod
    def parse(cls, text: str, tz: tzinfo = UTC) -> CronExpr:
        """Parse `text`; raise `CronError` (a `ValueError`) naming the wrong field and why."""
        source = text.strip()
        if source.startswith("@"):
            if source.lower() not in ALIASES:
                known = " ".join(ALIASES)
                raise CronError(text, None, f"unknown alias {source!r}; known: {known}")
            source = ALIASES[source.lower()]
        parts = source.split()
        if len(parts) != 5:
            shape = "minute hour day-of-month month day-of-week"
            raise CronError(text, None, f"expected 5 fields ({shape}), got {len(parts)}")
        sets = []
        for part, field in zip(parts, FIELDS, strict=True):
            try:
                sets.append(_field(part, field))
            except ValueError as exc:
                raise CronError(text, field.name, str(exc), part) from None
        minutes, hours, days, months, weekdays = sets
        dom_star, dow_star = parts[2].startswith("*"), parts[4].startswith("*")
        if (dom_star or dow_star) and not any(d <= MAX_DAYS[m - 1] for m in months for d in days):
            raise CronError(text, "day-of-month", "no such day in the months given", parts[2])
        return cls(
            text=text.strip(),
            minutes=tuple(sorted(minutes)),
            hours=tuple(sorted(hours)),
            days=days,
            months=tuple(sorted(months)),
            weekdays=weekdays,
            days_or=not (dom_star or dow_star),
            fixed_time=not (parts[0].startswith("*") or parts[1].startswith("*")),
            tz=tz,
        )

    def next_after(self, dt: datetime) -> datetime:
        """The first tick strictly after `dt` (timezone-aware), as an aware UTC datetime.

        UTC because Python compares and subtracts two datetimes of the same zone by their
        wall-clock fields, ignoring `fold`, which orders ticks of a repeated hour wrongly;
        `.astimezone(expr.tz)` gives the local time for display.
        """
        return self._next_utc(_as_utc(dt))

    def ticks_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Ticks `t` with `start < t <= end`, in order, as aware UTC datetimes."""
        t, stop = self._next_utc(_as_utc(start)), _as_utc(end)
        while t <= stop:
            yield t
            t = self._next_utc(t)

    def _next_utc(self, dt: datetime) -> datetime:
        local = dt.astimezone(self.tz)
        start = local.replace(tzinfo=None, fold=0)
        if local.fold == 0:
            # In the first pass of a repeated hour, second-pass ticks of earlier wall times
            # may come before any later wall time's first pass.
            start -= self._fold_size(start)
        best: datetime | None = None
        for wall in self._walls_from(start.replace(second=0, microsecond=0)):
            first, second = self._instants(wall)
            if second is not None and second > dt and (best is None or second < best):
                best = second
            if first is not None and first > dt:
                # First-pass instants rise with the wall time, so none later can be earlier.
                return first if best is None or first < best else best
        raise AssertionError("unreachable: _walls_from never ends")  # pragma: no cover

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        in_days = day in self.days
        in_weekdays = (calendar.weekday(year, month, day) + 1) % 7 in self.weekdays
        return (in_days or in_weekdays) if self.days_or else (in_days and in_weekdays)

    def _walls_from(self, t: datetime) -> Iterator[datetime]:
        """Matching naive wall-clock minutes at or after `t`, in order."""
        limit = t.year + SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = _next_month(t, self.months)
            elif not self._day_matches(t.year, t.month, t.day):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = _next_hour(t, self.hours)
            elif t.minute not in self.minutes:
                i = bisect.bisect_left(self.minutes, t.minute)
                if i == len(self.minutes):
                    t = t.replace(minute=0) + timedelta(hours=1)
                else:
                    t = t.replace(minute=self.minutes[i])
            else:
                yield t
                t += MINUTE
        raise ValueError(f"cron expression {self.text!r} has no tick before {limit}")

    def _instants(self, wall: datetime) -> tuple[datetime | None, datetime | None]:
        """(first, second) UTC instants of one matching wall time under the DST rule."""
        a = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        b = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if a == b:
            return a, None
        if a < b:  # repeated (fall back): a is the first pass, b the second
            return a, (None if self.fixed_time else b)
        if not self.fixed_time:  # skipped (spring forward)
            return None, None
        return _transition(b, a, self.tz), None

    def _fold_size(self, wall: datetime) -> timedelta:
        a = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        b = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        return max(b - a, timedelta(0))


def _as_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("cron times must be timezone-aware datetimes")
    return dt.astimezone(UTC)


def _next_month(t: datetime, months: tuple[int, ...]) -> datetime:
    i = bisect.bisect_right(months, t.month)
    if i == len(months):
        return datetime(t.year + 1, months[0], 1)
    return datetime(t.year, months[i], 1)


def _next_hour(t: datetime, hours: tuple[int, ...]) -> datetime:
    i = bisect.bisect_right(hours, t.hour)
    if i == len(hours):
        return datetime(t.year, t.month, t.day) + timedelta(days=1)
    return datetime(t.year, t.month, t.day, hours[i])


def _transition(before: datetime, after: datetime, tz: tzinfo) -> datetime:
    """The UTC instant in (before, after] where `tz` jumps forward (bisection on seconds)."""
    offset = before.astimezone(tz).utcoffset()
    lo, hi = 0, int((after - before).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (before + timedelta(seconds=mid)).astimezone(tz).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return before + timedelta(seconds=hi)
