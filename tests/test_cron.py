"""Cron expressions: parsing, errors, next ticks, the DST rule, and a brute-force property."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_worker.engine.cron import CronError, CronExpr

NY = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def ticks(text: str, start: datetime, count: int, tz: ZoneInfo | None = None) -> list[datetime]:
    expr = CronExpr.parse(text, tz or ZoneInfo("UTC"))
    out, t = [], start
    for _ in range(count):
        t = expr.next_after(t)
        out.append(t)
    return out


def test_aliases_mean_their_five_field_forms() -> None:
    """Each @alias fires exactly where its documented 5-field form fires."""
    start = utc(2024, 5, 17, 13, 45)
    pairs = {
        "@hourly": "0 * * * *",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
        "@yearly": "0 0 1 1 *",
        "@ANNUALLY": "0 0 1 1 *",
    }
    for alias, form in pairs.items():
        assert ticks(alias, start, 3) == ticks(form, start, 3), alias
    assert ticks("@weekly", start, 1) == [utc(2024, 5, 19)]


def test_lists_ranges_steps_and_names() -> None:
    """Lists, ranges, steps, a start with a step, and month/day names select the right minutes."""
    assert ticks("*/20 * * * *", utc(2024, 1, 1), 3)[-1] == utc(2024, 1, 1, 1, 0)
    assert [t.minute for t in ticks("10-50/15 * * * *", utc(2024, 1, 1), 4)] == [10, 25, 40, 10]
    assert [t.minute for t in ticks("45/5 * * * *", utc(2024, 1, 1), 4)] == [45, 50, 55, 45]
    assert [t.hour for t in ticks("0 1,5,22 * * *", utc(2024, 1, 1), 4)] == [1, 5, 22, 1]
    jan_mar = ticks("0 0 1 jan,Mar *", utc(2024, 1, 1), 3)
    assert jan_mar == [utc(2024, 3, 1), utc(2025, 1, 1), utc(2025, 3, 1)]
    weekdays = ticks("0 9 * * MON-FRI", utc(2024, 5, 17, 10), 3)  # a Friday, after 09:00
    assert weekdays == [utc(2024, 5, 20, 9), utc(2024, 5, 21, 9), utc(2024, 5, 22, 9)]


def test_sunday_is_zero_and_seven() -> None:
    """Day of week 0, 7 and SUN all mean Sunday, also at the end of a range."""
    start = utc(2024, 5, 13)  # a Monday
    sunday = ticks("0 0 * * 0", start, 2)
    assert ticks("0 0 * * 7", start, 2) == sunday == ticks("0 0 * * sun", start, 2)
    assert [t.weekday() for t in ticks("0 0 * * 5-7", start, 3)] == [4, 5, 6]


def test_both_day_fields_restricted_means_either() -> None:
    """With both day fields restricted a day matches either; a `*`-led field makes it both."""
    start = utc(2024, 9, 1)
    either = ticks("0 0 13 * FRI", start, 4)
    assert either == [utc(2024, 9, 6), utc(2024, 9, 13), utc(2024, 9, 20), utc(2024, 9, 27)]
    both = ticks("0 0 */2 * FRI", start, 2)  # odd days that are Fridays
    assert both == [utc(2024, 9, 13), utc(2024, 9, 27)]
    assert ticks("0 0 13 * *", start, 2) == [utc(2024, 9, 13), utc(2024, 10, 13)]


def test_next_after_is_strictly_after_and_returns_utc() -> None:
    """A tick's own instant gives the following tick; ticks come back as UTC instants."""
    tokyo = ZoneInfo("Asia/Tokyo")
    expr = CronExpr.parse("0 9 * * *", tokyo)
    first = expr.next_after(datetime(2024, 1, 1, 9, 0, tzinfo=tokyo))
    assert first == utc(2024, 1, 2, 0, 0)
    assert first.tzinfo is UTC
    assert expr.next_after(first) == utc(2024, 1, 3, 0, 0)
    assert expr.next_after(first - timedelta(microseconds=1)) == first


def test_29_february_waits_for_a_leap_year() -> None:
    """`0 0 29 2 *` skips years without 29 February, including 2100."""
    assert ticks("0 0 29 2 *", utc(2097, 1, 1), 2) == [utc(2104, 2, 29), utc(2108, 2, 29)]


def test_naive_datetimes_are_refused() -> None:
    """Ticks are instants, so a naive datetime is an error rather than a guess."""
    with pytest.raises(ValueError, match="timezone-aware"):
        CronExpr.parse("* * * * *").next_after(datetime(2024, 1, 1))


def test_ticks_between_excludes_start_and_includes_end() -> None:
    """ticks_between yields ticks in (start, end], in order."""
    expr = CronExpr.parse("*/15 * * * *")
    got = list(expr.ticks_between(utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 1, 0)))
    assert got == [utc(2024, 1, 1, 0, m) for m in (15, 30, 45)] + [utc(2024, 1, 1, 1, 0)]
    assert list(expr.ticks_between(utc(2024, 1, 1, 0, 1), utc(2024, 1, 1, 0, 14))) == []


def test_spring_forward_fixed_time_fires_at_the_jump() -> None:
    """A fixed 02:30 that does not exist (New York, 10 March 2024) fires once, at 03:00 EDT."""
    got = ticks("30 2 * * *", utc(2024, 3, 9, 12), 3, NY)
    assert got == [utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 30), utc(2024, 3, 12, 6, 30)]
    assert got[0].astimezone(NY).hour == 3
    several = ticks("0,15,45 2 * * *", utc(2024, 3, 10, 5), 2, NY)
    assert several == [utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 0)]


def test_spring_forward_wildcard_follows_the_clock() -> None:
    """An every-30-minutes expression skips the missing hour: 01:30 EST then 03:00 EDT."""
    got = ticks("*/30 * * * *", utc(2024, 3, 10, 6, 0), 2, NY)
    assert got == [utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7, 0)]


def test_fall_back_fixed_time_fires_once() -> None:
    """A fixed 01:30 in the repeated hour (New York, 3 November 2024) fires at its first pass."""
    got = ticks("30 1 * * *", utc(2024, 11, 2, 12), 2, NY)
    assert got == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_fall_back_wildcard_fires_in_both_passes() -> None:
    """An every-30-minutes expression fires in both passes of the repeated hour, in order."""
    got = ticks("*/30 * * * *", utc(2024, 11, 3, 4, 45), 6, NY)
    want = [utc(2024, 11, 3, h, m) for h, m in ((5, 0), (5, 30), (6, 0), (6, 30), (7, 0), (7, 30))]
    assert got == want
    second_pass = CronExpr.parse("15 * * * *", NY).next_after(utc(2024, 11, 3, 5, 59))
    assert second_pass == utc(2024, 11, 3, 6, 15)  # 01:15 EST, before 02:15 EST


def test_half_hour_dst_shift() -> None:
    """Lord Howe Island moves its clocks by 30 minutes; a fixed 02:15 fires at the jump."""
    lhi = ZoneInfo("Australia/Lord_Howe")
    got = CronExpr.parse("15 2 * * *", lhi).next_after(datetime(2024, 10, 6, 1, 0, tzinfo=lhi))
    assert got.astimezone(lhi).replace(tzinfo=None) == datetime(2024, 10, 6, 2, 30)


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("* * * *", None, "expected 5 fields"),
        ("* * * * * *", None, "expected 5 fields"),
        ("", None, "got 0"),
        ("@reboot", None, "unknown alias '@reboot'"),
        ("60 * * * *", "minute", "60 is out of range 0-59"),
        ("* 24 * * *", "hour", "24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month", "0 is out of range 1-31"),
        ("* * * 13 *", "month", "13 is out of range 1-12"),
        ("* * * * 8", "day-of-week", "8 is out of range 0-7"),
        ("*/0 * * * *", "minute", "step '0'"),
        ("*/x * * * *", "minute", "step 'x'"),
        ("5-1 * * * *", "minute", "starts after it ends"),
        ("1,,2 * * * *", "minute", "empty list item"),
        ("* * * FOO *", "month", "'FOO' is not a number or a name"),
        ("* * * * MON-FUN", "day-of-week", "'FUN' is not a number or a name"),
        ("JAN * * * *", "minute", "'JAN' is not a number"),
        ("-5 * * * *", "minute", "'' is not a number"),
        ("0 0 30 2 *", "day-of-month", "no such day in the months given"),
        ("0 0 31 4,6,9,11 *", "day-of-month", "no such day"),
    ],
)
def test_errors_name_the_field_and_the_reason(text: str, field: str | None, reason: str) -> None:
    """A bad expression raises a ValueError naming the wrong field and saying why."""
    with pytest.raises(CronError) as info:
        CronExpr.parse(text)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    message = str(info.value)
    assert reason in message
    assert repr(text) in message
    if field:
        assert f"{field} field" in message


# --- property: next_after against a minute-by-minute scan of the documented rule -------------

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Kolkata",
]
BOUNDS = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 7)}
SCAN = timedelta(days=3)


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]


@st.composite
def fields(draw: st.DrawFn, kind: str) -> Field:
    lo, hi = BOUNDS[kind]
    shape = draw(st.sampled_from(["star", "star_step", "list"]))
    if shape == "star":
        return Field("*", frozenset(range(lo, hi + 1)))
    if shape == "star_step":
        step = draw(st.integers(1, hi - lo + 1))
        return Field(f"*/{step}", frozenset(range(lo, hi + 1, step)))
    items, values = [], set()
    for _ in range(draw(st.integers(1, 3))):
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(a, min(hi, a + 20)))
        step = draw(st.integers(1, 10))
        form = draw(st.sampled_from(["one", "range", "range_step"]))
        if form == "one":
            items.append(str(a))
            values.add(a)
        else:
            items.append(f"{a}-{b}" + (f"/{step}" if form == "range_step" else ""))
            values.update(range(a, b + 1, step if form == "range_step" else 1))
    return Field(",".join(items), frozenset(values))


@functools.cache
def _transitions(zone: str) -> list[datetime]:
    """UTC instants (2020-2026) where the zone's offset changes: hourly scan, then by minute."""
    tz = ZoneInfo(zone)
    out, t = [], utc(2020, 1, 1)
    while t < utc(2026, 1, 1):
        after = t + timedelta(hours=1)
        if t.astimezone(tz).utcoffset() != after.astimezone(tz).utcoffset():
            while t.astimezone(tz).utcoffset() == (t + MINUTE).astimezone(tz).utcoffset():
                t += MINUTE
            out.append(t + MINUTE)
        t = after.replace(minute=0)
    return out


def _brute_next(parts: list[Field], tz: ZoneInfo, start: datetime) -> datetime | None:
    """The documented rule, minute by minute over UTC instants (None: nothing within SCAN)."""
    minute, hour, dom, month, dow = parts
    weekdays = {d % 7 for d in dow.values}
    days_or = not (dom.text.startswith("*") or dow.text.startswith("*"))
    fixed = not (minute.text.startswith("*") or hour.text.startswith("*"))

    def matches(w: datetime) -> bool:
        if w.minute not in minute.values or w.hour not in hour.values:
            return False
        if w.month not in month.values:
            return False
        in_dom, in_dow = w.day in dom.values, (w.weekday() + 1) % 7 in weekdays
        return (in_dom or in_dow) if days_or else (in_dom and in_dow)

    t = start.replace(second=0, microsecond=0)
    while t < start + SCAN:
        t += MINUTE
        local = t.astimezone(tz)
        wall = local.replace(tzinfo=None, fold=0)
        if matches(wall) and (local.fold == 0 or not fixed):
            return t
        prev = (t - MINUTE).astimezone(tz).replace(tzinfo=None, fold=0)
        skipped = prev + MINUTE
        while fixed and skipped < wall:
            if matches(skipped):
                return t
            skipped += MINUTE
    return None


def _around_transition(data: st.DataObject, zone: str) -> tuple[datetime, list[Field]]:
    """A start shortly before or after a DST change, and fields likely to tick around it."""
    tz = ZoneInfo(zone)
    change = data.draw(st.sampled_from(_transitions(zone)))
    start = change + timedelta(seconds=data.draw(st.integers(-4 * 3600, 2 * 3600)))
    before = (change - MINUTE).astimezone(tz).hour
    near_hours = sorted({before, (before + 1) % 24, change.astimezone(tz).hour})
    hour = data.draw(
        st.one_of(
            fields("hour"),
            st.just(Field("*", frozenset(range(24)))),
            st.sampled_from(near_hours).map(lambda h: Field(str(h), frozenset({h}))),
            st.just(Field(",".join(map(str, near_hours)), frozenset(near_hours))),
        )
    )
    star = {k: Field("*", frozenset(range(BOUNDS[k][0], BOUNDS[k][1] + 1))) for k in BOUNDS}
    days = [
        data.draw(
            st.one_of(st.just(star[k]), fields(k)) if data.draw(st.booleans()) else st.just(star[k])
        )
        for k in ("dom", "month", "dow")
    ]
    minute = data.draw(
        st.one_of(
            fields("minute"),
            st.sampled_from([0, 15, 30, 45]).map(lambda m: Field(str(m), frozenset({m}))),
        )
    )
    return start, [minute, hour, *days]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_next_after_matches_a_brute_force_scan(data: st.DataObject) -> None:
    """For random expressions, zones and instants, next_after equals a minute-by-minute scan."""
    zone = data.draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone)
    if zone != "UTC" and zone != "Asia/Kolkata" and data.draw(st.booleans()):
        start, parts = _around_transition(data, zone)
    else:
        seconds = data.draw(st.integers(0, 6 * 365 * 86400))
        start = utc(2020, 1, 1) + timedelta(seconds=seconds, microseconds=seconds % 7)
        parts = [data.draw(fields(kind)) for kind in ("minute", "hour", "dom", "month", "dow")]
    text = " ".join(p.text for p in parts)
    impossible = not any(
        d <= (29 if m == 2 else 30 + (m in {1, 3, 5, 7, 8, 10, 12}))
        for m in parts[3].values
        for d in parts[2].values
    )
    if impossible and (parts[2].text.startswith("*") or parts[4].text.startswith("*")):
        with pytest.raises(CronError, match="day-of-month field"):
            CronExpr.parse(text, tz)
        return
    expr = CronExpr.parse(text, tz)
    want = _brute_next(parts, tz, start)
    got = expr.next_after(start)
    if want is None:
        assert got >= start + SCAN
    else:
        assert got == want, (text, zone, start)
