"""Property tests of ``kiosk.policy`` against an independent oracle.

The oracle is a table of the week's minutes (7 x 1440) built straight from the policy's words:
a moment is allowed when the home's wall clock then reads a minute of a window of that weekday
(the morning part of a past-midnight window belongs to the day before) and not a minute of the
quiet hours. Every boundary of that set falls on a whole UTC minute (policy times are whole
minutes and every zone tested here is offset, and changes offset, by whole minutes), so walking
each minute between two instants checks "nothing in between is allowed" exhaustively.

Instants span 2024-2031 and are drawn either anywhere or within three hours of a clock change of
the zone drawn; zones include half-hour (Kolkata) and 45-minute (Chatham) offsets and both
hemispheres.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import policy as pol

ZONES = [
    "Europe/Paris",
    "America/New_York",
    "Australia/Sydney",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "UTC",
]
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2031, 12, 31, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The zone's clock changes, found independently of the module (minute by minute search)."""
    tz = ZoneInfo(zone)
    found = []
    t = START
    offset = t.astimezone(tz).utcoffset()
    while t < END:
        nxt = t + timedelta(hours=1)
        if nxt.astimezone(tz).utcoffset() != offset:
            m = t
            while m.astimezone(tz).utcoffset() == offset:
                m += MINUTE
            found.append(m)
            offset = nxt.astimezone(tz).utcoffset()
        t = nxt
    return tuple(found)


# -- strategies -------------------------------------------------------------------------------

# Hours around the clock changes are drawn often; minutes include the odd ones.
hours = st.one_of(st.integers(0, 23), st.sampled_from([0, 1, 2, 3, 4]))
minutes = st.one_of(st.sampled_from([0, 15, 30, 45]), st.integers(0, 59))
wall = st.builds(lambda h, m: f"{h:02d}:{m:02d}", hours, minutes)
days = st.lists(st.integers(0, 6), min_size=0, max_size=7)
window = st.builds(
    lambda d, s, e, has_days: (
        {"days": d, "start": s, "end": e} if has_days else {"start": s, "end": e}
    ),
    days,
    wall,
    wall,
    st.booleans(),
)
policies = st.fixed_dictionaries(
    {},
    optional={
        "windows": st.one_of(st.none(), st.lists(window, max_size=3)),
        "quiet_hours": st.one_of(
            st.none(), st.builds(lambda s, e: {"start": s, "end": e}, wall, wall)
        ),
        "calls_per_day": st.one_of(st.none(), st.integers(0, 4)),
        "max_duration_min": st.one_of(st.none(), st.integers(0, 90)),
        "auto_answer_s": st.one_of(st.none(), st.integers(0, 30)),
        "supervised": st.booleans(),
    },
)
zones = st.sampled_from(ZONES)


@st.composite
def moments(draw: st.DrawFn, zone: str) -> datetime:
    changes = transitions(zone)
    if changes and draw(st.booleans()):
        change = draw(st.sampled_from(changes))
        return change + timedelta(seconds=draw(st.integers(-3 * 3600, 3 * 3600)))
    seconds = int((END - START).total_seconds())
    return START + timedelta(seconds=draw(st.integers(0, seconds)))


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], datetime, str]:
    zone = draw(zones)
    return draw(policies), draw(moments(zone)), zone


# -- the oracle -------------------------------------------------------------------------------


def _minutes(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def week_table(policy: dict[str, Any]) -> list[list[bool]]:
    windows = policy.get("windows") or []
    inside = [[not windows] * 1440 for _ in range(7)]
    for w in windows:
        start, end = _minutes(w["start"]), _minutes(w["end"])
        for d in w.get("days", range(7)):
            if start < end:
                for m in range(start, end):
                    inside[d][m] = True
            elif start > end:
                for m in range(start, 1440):
                    inside[d][m] = True
                for m in range(end):
                    inside[(d + 1) % 7][m] = True
    quiet = policy.get("quiet_hours")
    if quiet:
        start, end = _minutes(quiet["start"]), _minutes(quiet["end"])
        if start < end:
            span = set(range(start, end))
        elif start > end:
            span = set(range(start, 1440)) | set(range(end))
        else:
            span = set()
        for d in range(7):
            for m in span:
                inside[d][m] = False
    return inside


def oracle(table: list[list[bool]], instant: datetime, zone: str) -> bool:
    local = instant.astimezone(ZoneInfo(zone))
    return table[local.weekday()][local.hour * 60 + local.minute]


def first_allowed_minute(
    table: list[list[bool]], after: datetime, until: datetime, zone: str
) -> datetime | None:
    """The first whole UTC minute in (after, until] the oracle allows, walking every minute."""
    t = after.replace(second=0, microsecond=0) + MINUTE
    while t <= until:
        if oracle(table, t, zone):
            return t
        t += MINUTE
    return None


# -- properties -------------------------------------------------------------------------------


@SETTINGS
@given(cases())
def test_evaluate_allows_exactly_the_wall_clock_minutes_of_the_windows(case: Any) -> None:
    """(a) Allowed ⇔ the local wall clock is in a window of that weekday and not quiet."""
    policy, now, zone = case
    table = week_table(policy)
    decision = pol.evaluate(policy, now, zone, calls_today=0)
    expected = oracle(table, now, zone) and policy.get("calls_per_day") != 0
    assert decision.allowed == expected, (decision, now.astimezone(ZoneInfo(zone)))
    if decision.allowed:
        assert decision.reason == "ok" and decision.next_allowed is None


@SETTINGS
@given(cases())
def test_next_allowed_is_the_first_allowed_moment(case: Any) -> None:
    """(b) ``next_allowed`` is after now, allowed, and exactly the first allowed moment: every
    minute in between is checked; when it is None, nothing is allowed in the coming week."""
    policy, now, zone = case
    policy = {k: v for k, v in policy.items() if k != "calls_per_day"}
    table = week_table(policy)
    decision = pol.evaluate(policy, now, zone)
    if decision.allowed:
        return
    nxt = decision.next_allowed
    if nxt is None:
        assert first_allowed_minute(table, now, now + timedelta(days=8), zone) is None
        return
    assert nxt.tzinfo is not None and nxt.utcoffset() == timedelta(0)
    assert nxt > now
    assert pol.evaluate(policy, nxt, zone).allowed
    assert oracle(table, nxt, zone)
    assert nxt.second == 0 and nxt.microsecond == 0
    assert first_allowed_minute(table, now, nxt, zone) == nxt


@SETTINGS
@given(cases(), st.integers(0, 6))
def test_the_daily_limit_is_respected(case: Any, calls_today: int) -> None:
    """(d) Never allowed once the day's calls are made; the next slot is on a later local day,
    allowed, and the first allowed moment from that day's start."""
    policy, now, zone = case
    limit = policy.get("calls_per_day")
    decision = pol.evaluate(policy, now, zone, calls_today)
    if limit is None or calls_today < limit:
        assert decision.allowed == pol.evaluate(policy, now, zone, 0).allowed
        return
    assert not decision.allowed
    if decision.reason != "daily_limit":
        return  # outside the window or quiet anyway: test (b) covers that next slot
    nxt = decision.next_allowed
    if limit == 0:
        assert nxt is None
        return
    if nxt is None:
        return
    tz = ZoneInfo(zone)
    assert nxt.astimezone(tz).date() > now.astimezone(tz).date()
    assert pol.evaluate(policy, nxt, zone, 0).allowed
    table = week_table(policy)
    midnight = datetime.combine(now.astimezone(tz).date() + timedelta(days=1), datetime.min.time())
    midnight_utc = midnight.replace(tzinfo=tz).astimezone(UTC)
    if oracle(table, midnight_utc, zone):
        assert nxt == midnight_utc
    else:
        assert first_allowed_minute(table, midnight_utc, nxt, zone) == nxt


bad_values = st.sampled_from(
    [
        ("windows", {}),
        ("windows", ""),
        ("windows", 0),
        ("windows", "14:00-18:00"),
        ("windows", [{"days": [7], "start": "14:00", "end": "18:00"}]),
        ("windows", [{"days": [-1], "start": "14:00", "end": "18:00"}]),
        ("windows", [{"days": [True], "start": "14:00", "end": "18:00"}]),
        ("windows", [{"days": 1, "start": "14:00", "end": "18:00"}]),
        ("windows", [{"start": "25:00", "end": "18:00"}]),
        ("windows", [{"start": "14h", "end": "18:00"}]),
        ("windows", [{"start": None, "end": "18:00"}]),
        ("windows", [{"start": "14:00"}]),
        ("windows", ["14:00"]),
        ("quiet_hours", {}),
        ("quiet_hours", []),
        ("quiet_hours", "21:00"),
        ("quiet_hours", {"start": "21:00", "end": "8"}),
        ("calls_per_day", -1),
        ("calls_per_day", "3"),
        ("calls_per_day", True),
        ("calls_per_day", 1.5),
        ("max_duration_min", -5),
        ("auto_answer_s", "10"),
        ("supervised", "yes"),
        ("supervised", 1),
    ]
)


@SETTINGS
@given(cases(), bad_values)
def test_an_invalid_policy_allows_nothing(case: Any, bad: tuple[str, Any]) -> None:
    """(e) One unreadable part makes the whole policy allow nothing, ever."""
    policy, now, zone = case
    key, value = bad
    broken = {**policy, key: value}
    with pytest.raises(pol.PolicyError):
        pol.validate(broken)
    decision = pol.evaluate(broken, now, zone)
    assert decision == pol.Decision(False, "invalid_policy")


@SETTINGS
@given(cases(), st.sampled_from([[], "", 0, False, "policy", ["windows"], 3]))
def test_a_policy_that_is_not_an_object_allows_nothing(case: Any, policy: Any) -> None:
    _, now, zone = case
    assert pol.evaluate(policy, now, zone) == pol.Decision(False, "invalid_policy")


@SETTINGS
@given(policies)
def test_generated_policies_are_valid(policy: dict[str, Any]) -> None:
    assert pol.validate(policy) is policy


# -- (c) the clock changes themselves -----------------------------------------------------------

NIGHT = {"windows": [{"start": "02:00", "end": "03:00"}]}


def allowed_minutes(
    policy: dict[str, Any], zone: str, day_start: datetime, hours: int
) -> list[datetime]:
    return [
        t
        for t in (day_start + i * MINUTE for i in range(hours * 60))
        if pol.evaluate(policy, t, zone).allowed
    ]


def test_the_hour_skipped_in_spring_opens_nothing() -> None:
    """Paris, 29 March 2026: 02:00 CET becomes 03:00 CEST, no clock reads 02:xx."""
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # local midnight
    assert allowed_minutes(NIGHT, "Europe/Paris", start, 23) == []
    before = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)  # 01:59 CET
    decision = pol.evaluate(NIGHT, before, "Europe/Paris")
    # Not the non-existent 02:00 (which zoneinfo would read as 03:00 CEST): Monday's 02:00.
    assert decision.next_allowed == datetime(2026, 3, 30, 0, 0, tzinfo=UTC)


def test_the_hour_repeated_in_autumn_is_inside_both_times_and_nothing_else_opens() -> None:
    """Paris, 25 October 2026: 03:00 CEST becomes 02:00 CET; the clock reads 02:xx twice."""
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # local midnight (CEST)
    allowed = allowed_minutes(NIGHT, "Europe/Paris", start, 25)
    assert allowed[0] == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # 02:00 CEST
    assert allowed[-1] == datetime(2026, 10, 25, 1, 59, tzinfo=UTC)  # 02:59 CET
    assert len(allowed) == 120
    tz = ZoneInfo("Europe/Paris")
    assert {t.astimezone(tz).hour for t in allowed} == {2}


def test_quiet_hours_last_through_the_repeated_hour() -> None:
    quiet = {"quiet_hours": {"start": "21:00", "end": "02:30"}}
    zone = "Europe/Paris"
    # 02:40 CEST, between the two readings of 02:30: not quiet now ...
    assert pol.evaluate(quiet, datetime(2026, 10, 25, 0, 40, tzinfo=UTC), zone).allowed
    # ... but 02:10 CET, the second reading, is quiet again: the safe side.
    decision = pol.evaluate(quiet, datetime(2026, 10, 25, 1, 10, tzinfo=UTC), zone)
    assert decision.reason == "quiet_hours"
    assert decision.next_allowed == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_a_window_opening_in_the_skipped_hour_opens_at_the_clock_change() -> None:
    policy = {"windows": [{"start": "02:30", "end": "05:00"}]}
    before = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET
    decision = pol.evaluate(policy, before, "Europe/Paris")
    assert decision.next_allowed == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST


def test_a_window_reopening_in_the_repeated_hour_is_found() -> None:
    policy = {"windows": [{"start": "01:00", "end": "02:30"}]}
    at = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CEST
    decision = pol.evaluate(policy, at, "Europe/Paris")
    assert decision.next_allowed == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 02:00 CET


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Pacific/Chatham"])
def test_afternoon_windows_keep_their_local_hours_across_a_change(zone: str) -> None:
    policy = {"windows": [{"start": "14:00", "end": "18:00"}]}
    tz = ZoneInfo(zone)
    for change in transitions(zone)[:4]:
        for days_after in (-1, 1):
            local_day = (change + timedelta(days=days_after)).astimezone(tz).date()
            inside = datetime.combine(local_day, datetime.min.time().replace(hour=14), tzinfo=tz)
            assert pol.evaluate(policy, inside, zone).allowed
            assert not pol.evaluate(policy, inside - MINUTE, zone).allowed


@SETTINGS
@given(cases())
def test_the_instant_counts_not_how_it_is_written(case: Any) -> None:
    """The same instant written in UTC or as a wall time of the home (even a skipped or repeated
    one, as ``datetime.combine`` makes them) gets the same answer."""
    policy, now, zone = case
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    for fold in (0, 1):
        written = local.replace(tzinfo=None).replace(tzinfo=tz, fold=fold)
        instant = written.astimezone(UTC)
        assert pol.evaluate(policy, written, zone) == pol.evaluate(policy, instant, zone)


def test_a_skipped_wall_time_is_not_read_as_inside_the_window() -> None:
    tz = ZoneInfo("Europe/Paris")
    skipped = datetime(2026, 3, 29, 2, 30, tzinfo=tz)  # no clock reads this: it is 03:30 CEST
    assert not pol.evaluate(NIGHT, skipped, "Europe/Paris").allowed
