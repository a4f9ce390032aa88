"""The call policy of one approved pair: pure functions, no I/O, used by backend and tablet alike.

A policy is the JSON object staff set on an approval::

    {
      "windows": [{"days": [0, 1, 2, 3, 4], "start": "14:00", "end": "18:00"}],
      "quiet_hours": {"start": "21:00", "end": "08:00"},
      "calls_per_day": 3,
      "max_duration_min": 30,
      "auto_answer_s": 10,
      "supervised": false
    }

Every key is optional; an empty policy (or ``None``) allows calls at any time. ``days`` are ISO
weekdays counted from Monday = 0. Times are wall-clock times in the home's time zone, so a window
keeps its local hours across daylight saving changes. A window whose end is before its start runs
past midnight. Quiet hours always win over windows.

Daylight saving: a moment is allowed when the wall clock of the home then reads a time inside a
window of that weekday and outside the quiet hours, nothing else. So the hour skipped in spring
opens nothing (no clock ever reads it), and the hour repeated in autumn is inside a window (or
quiet) both times the clock reads it: quiet hours never shrink, the safe side for a child.
:func:`next_allowed` returns the exact first such moment, including the instant of a clock change
when that is where a window opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Decision:
    """Whether a call may ring now and, if not, why and when it could."""

    allowed: bool
    reason: str  # "ok", "outside_window", "quiet_hours", "daily_limit", "invalid_policy"
    next_allowed: datetime | None = None  # aware, UTC


@dataclass(frozen=True)
class Window:
    days: tuple[int, ...]
    start: time
    end: time


class PolicyError(ValueError):
    """A policy that cannot be understood; the sentence says which part."""


def _parse_time(value: Any, what: str) -> time:
    if not isinstance(value, str):
        raise PolicyError(f"{what} must be a time like '14:30'")
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise PolicyError(f"{what} must be a time like '14:30', not {value!r}") from exc


def parse_windows(policy: dict[str, Any]) -> list[Window]:
    raw_windows = policy.get("windows")
    if raw_windows is None:
        return []
    if not isinstance(raw_windows, list):
        # {} or "" or 0 once meant "no windows", that is "any time": never read a typo as that.
        raise PolicyError("windows is a list")
    windows = []
    for i, raw in enumerate(raw_windows):
        if not isinstance(raw, dict):
            raise PolicyError(f"window {i + 1} is not an object")
        days = raw.get("days", list(ALL_DAYS))
        if not isinstance(days, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days
        ):
            raise PolicyError(f"window {i + 1}: days are numbers from 0 (Monday) to 6 (Sunday)")
        windows.append(
            Window(
                days=tuple(sorted(set(days))),
                start=_parse_time(raw.get("start"), f"window {i + 1} start"),
                end=_parse_time(raw.get("end"), f"window {i + 1} end"),
            )
        )
    return windows


def validate(policy: dict[str, Any]) -> dict[str, Any]:
    """Check a policy staff entered; raise :class:`PolicyError` with a sentence, else return it."""
    if not isinstance(policy, dict):
        raise PolicyError("a policy is a JSON object")
    parse_windows(policy)
    quiet = policy.get("quiet_hours")
    if quiet is not None:
        if not isinstance(quiet, dict):
            raise PolicyError("quiet_hours is an object with start and end")
        _parse_time(quiet.get("start"), "quiet hours start")
        _parse_time(quiet.get("end"), "quiet hours end")
    for key in ("calls_per_day", "max_duration_min", "auto_answer_s"):
        value = policy.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise PolicyError(f"{key} must be a whole number or null")
    if not isinstance(policy.get("supervised", False), bool):
        raise PolicyError("supervised is true or false")
    return policy


def _in_span(t: time, start: time, end: time) -> bool:
    """Whether wall-clock ``t`` is in [start, end), the span possibly crossing midnight."""
    if start == end:
        return False
    if start < end:
        return start <= t < end
    return t >= start or t < end


def _local_parts(now: datetime, tz: ZoneInfo) -> tuple[date, time, int]:
    # Through UTC: an aware datetime already in ``tz`` with a wall time the clock skips (02:30 on
    # the spring change) would otherwise come back unchanged, as if that time had been read.
    local = now.astimezone(UTC).astimezone(tz)
    return local.date(), local.time().replace(tzinfo=None), local.weekday()


def _in_window(local_day: date, local_t: time, weekday: int, window: Window) -> bool:
    if window.start < window.end:
        return weekday in window.days and window.start <= local_t < window.end
    if window.start == window.end:
        return False
    # Past midnight: the evening part belongs to the day it starts, the morning part to the day
    # before.
    if weekday in window.days and local_t >= window.start:
        return True
    previous = (weekday - 1) % 7
    return previous in window.days and local_t < window.end


def quiet_now(policy: dict[str, Any], now: datetime, timezone: str) -> bool:
    quiet = policy.get("quiet_hours")
    if not quiet:
        return False
    _, local_t, _ = _local_parts(now, ZoneInfo(timezone))
    return _in_span(
        local_t, _parse_time(quiet["start"], "quiet start"), _parse_time(quiet["end"], "quiet end")
    )


def allowed_at(policy: dict[str, Any], moment: datetime, timezone: str) -> bool:
    """Windows and quiet hours only (no daily count): may a call ring at ``moment``?"""
    tz = ZoneInfo(timezone)
    if quiet_now(policy, moment, timezone):
        return False
    windows = parse_windows(policy)
    if not windows:
        return True
    local_day, local_t, weekday = _local_parts(moment, tz)
    return any(_in_window(local_day, local_t, weekday, w) for w in windows)


def _transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants (UTC, to the second) in [start, end] where ``tz``'s offset changes."""
    found = []
    step = timedelta(hours=1)
    t = start.astimezone(UTC)
    offset = t.astimezone(tz).utcoffset()
    while t < end:
        nxt = min(t + step, end.astimezone(UTC))
        next_offset = nxt.astimezone(tz).utcoffset()
        if next_offset != offset:
            low, high = t, nxt  # offset(low) == offset, offset(high) != offset
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                mid = mid.replace(microsecond=0)
                if mid <= low:
                    break
                if mid.astimezone(tz).utcoffset() == offset:
                    low = mid
                else:
                    high = mid
            found.append(high)
            offset = next_offset
        t = nxt
    return found


def _instants(day: date, wall: time, tz: ZoneInfo) -> set[datetime]:
    """Every instant when the clock reads ``wall`` on ``day`` (two in the repeated hour, none in
    the skipped one: the clock change itself is then a candidate of its own)."""
    found = set()
    for fold in (0, 1):
        candidate = datetime.combine(day, wall, tzinfo=tz).replace(fold=fold)
        in_utc = candidate.astimezone(UTC)
        if in_utc.astimezone(tz).replace(tzinfo=None) == datetime.combine(day, wall):
            found.add(in_utc)
    return found


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz`` (UTC): midnight, or the clock change skipping it."""
    instants = _instants(day, time(0, 0), tz)
    if instants:
        return min(instants)
    naive = datetime.combine(day, time(0, 0), tzinfo=tz)
    before = naive.replace(fold=1).astimezone(UTC)
    after = naive.replace(fold=0).astimezone(UTC)
    return _transitions(tz, min(before, after), max(before, after))[0]


def next_allowed(
    policy: dict[str, Any],
    now: datetime,
    timezone: str,
    horizon_days: int = 8,
    *,
    inclusive: bool = False,
) -> datetime | None:
    """The first moment after ``now`` (or at ``now`` if ``inclusive``) when a call may ring, by
    windows and quiet hours; None if there is none within ``horizon_days`` (aware, UTC).

    The set of allowed moments only begins at a window's start, at the end of quiet hours or at
    a clock change (a window that opens in the skipped hour, or again in the repeated hour):
    each of those instants after ``now`` is a candidate, checked with :func:`allowed_at`, and the
    earliest that passes is exact. ``now`` is returned when ``inclusive`` and it is allowed.
    """
    tz = ZoneInfo(timezone)
    now = now.astimezone(UTC)
    if inclusive and allowed_at(policy, now, timezone):
        return now
    walls = {w.start for w in parse_windows(policy)}
    quiet = policy.get("quiet_hours")
    if quiet:
        walls.add(_parse_time(quiet["end"], "quiet end"))
    walls.add(time(0, 0))
    first_day = now.astimezone(tz).date() - timedelta(days=1)
    last = now + timedelta(days=horizon_days + 1)
    candidates: set[datetime] = set(_transitions(tz, now, last))
    for offset in range(horizon_days + 3):
        day = first_day + timedelta(days=offset)
        for wall in walls:
            candidates.update(_instants(day, wall, tz))
    for candidate in sorted(c for c in candidates if now < c <= last):
        if allowed_at(policy, candidate, timezone):
            return candidate
    return None


def evaluate(
    policy: dict[str, Any] | None, now: datetime, timezone: str, calls_today: int = 0
) -> Decision:
    """May a call between this pair ring at ``now`` (aware)?"""
    if now.tzinfo is None:
        raise ValueError("evaluate() needs an aware datetime")
    if policy is None:
        policy = {}
    try:
        validate(policy)
    except PolicyError:
        # A policy nobody can read allows nothing: the safe side for a protected child.
        return Decision(False, "invalid_policy")
    if quiet_now(policy, now, timezone):
        return Decision(False, "quiet_hours", next_allowed(policy, now, timezone))
    if not allowed_at(policy, now, timezone):
        return Decision(False, "outside_window", next_allowed(policy, now, timezone))
    limit = policy.get("calls_per_day")
    if limit is not None and calls_today >= limit:
        if limit == 0:
            return Decision(False, "daily_limit")  # no call on any day: there is no "next"
        # The day's count starts again at the next local midnight (the first instant of the
        # next date: midnight itself may be skipped by a clock change).
        tz = ZoneInfo(timezone)
        tomorrow = now.astimezone(tz).date() + timedelta(days=1)
        midnight = _day_start(tomorrow, tz)
        return Decision(
            False, "daily_limit", next_allowed(policy, midnight, timezone, inclusive=True)
        )
    return Decision(True, "ok")


def auto_answer_seconds(policy: dict[str, Any] | None) -> int | None:
    value = (policy or {}).get("auto_answer_s")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
