"""What staff see of usage: weekly figures, isolation alerts and residents with no contact.

Figures are aggregates only (per day in ``usage_daily``, shown per week): never a log of who
called whom at what minute. Past days come from ``usage_daily`` (the roll-up,
``backend/services/rollup.py``), so they stay right after retention deleted the detail; the
current local day, not rolled up yet, is computed from the detailed rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from backend.models import (
    Approval,
    ApprovalStatus,
    Call,
    CallDirection,
    Home,
    Resident,
    TabletEvent,
    UsageDaily,
    utcnow,
)
from backend.services import rollup

log = logging.getLogger(__name__)

WEEKS = 12  # what the charts and the CSV show by default
DETAIL_DAYS = 2  # isolation alerts read the call log this far back; usage_daily before that
MAX_WEEKS = 104


@dataclass
class Figures:
    """Sums over a period (a day, a week) for one resident or a whole home."""

    calls_made: int = 0
    calls_received: int = 0
    calls_missed: int = 0
    call_seconds: int = 0
    activity_seconds: int = 0
    activities: dict[str, int] = field(default_factory=dict)

    @property
    def minutes(self) -> int:
        return round(self.call_seconds / 60)

    @property
    def activity_uses(self) -> int:
        return sum(self.activities.values())

    @property
    def calls(self) -> int:
        """Calls that connected or were attempted by the resident (made + received)."""
        return self.calls_made + self.calls_received

    def add(self, other: Figures) -> None:
        self.calls_made += other.calls_made
        self.calls_received += other.calls_received
        self.calls_missed += other.calls_missed
        self.call_seconds += other.call_seconds
        self.activity_seconds += other.activity_seconds
        for key, times in other.activities.items():
            self.activities[key] = self.activities.get(key, 0) + times


@dataclass
class Week:
    start: date  # the Monday, in the home's local calendar
    figures: Figures

    @property
    def end(self) -> date:
        return self.start + timedelta(days=6)


# -- calendar ------------------------------------------------------------------------------------


def local_today(home: Home, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(ZoneInfo(home.timezone)).date()


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """A local day as a UTC half-open interval [start, end)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_starts(today: date, weeks: int) -> list[date]:
    """The Mondays of the last ``weeks`` weeks, oldest first; the last is this week's."""
    last = monday(today)
    return [last - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]


def clamp_weeks(value: Any) -> int:
    try:
        weeks = int(value)
    except (TypeError, ValueError):
        return WEEKS
    return max(1, min(MAX_WEEKS, weeks))


# -- today's figures from the detailed rows ---------------------------------------------------


def day_from_detail(
    session: Session, *, home: Home, day: date, resident_ids: Iterable[str] | None = None
) -> dict[str, Figures]:
    """Per resident, the figures of one local day computed from the call log and tablet events
    by the roll-up's own definitions (``rollup.day_figures``): today, not rolled up yet, is
    counted exactly as the past days in ``usage_daily`` were."""
    wanted = set(resident_ids) if resident_ids is not None else None
    out: dict[str, Figures] = {}
    for (rid, _day), f in rollup.day_figures(session, home, day, day).items():
        if wanted is not None and rid not in wanted:
            continue
        out[rid] = Figures(
            calls_made=f.calls_made,
            calls_received=f.calls_received,
            calls_missed=f.calls_missed,
            call_seconds=f.call_seconds,
            activity_seconds=f.activity_seconds,
            activities=dict(f.activities),
        )
    return out


def resident_day_from_detail(
    session: Session, *, home: Home, day: date, resident_id: str
) -> Figures | None:
    """One resident's figures of one local day from the detailed rows (None: nothing that day).

    The same definitions as :func:`day_from_detail` (the roll-up's own folds), but the rows are
    selected for the resident in SQL: the resident's calls, and the home's tablets' activity
    events naming them. A resident page used to fold the whole home's day for one resident.
    """
    tz = ZoneInfo(home.timezone)
    start, end = rollup.day_start(day, tz), rollup.day_start(day + timedelta(days=1), tz)
    figures = rollup.Figures()
    found = False
    calls = select(Call.direction, Call.created_at, Call.answer_at, Call.duration_s).where(
        Call.resident_id == resident_id, Call.created_at >= start, Call.created_at < end
    )
    for direction, created_at, answer_at, duration_s in session.execute(calls):
        if rollup.local_day(created_at, tz) == day:
            rollup._fold_call(figures, direction, answer_at is not None, duration_s)
            found = True
    tablets = rollup.home_tablet_ids(session, home.id)
    if tablets:
        events = select(
            TabletEvent.type,
            TabletEvent.ts,
            TabletEvent.data["activity"].as_string(),
            TabletEvent.data["duration_s"].as_string(),
        ).where(
            TabletEvent.tablet_id.in_(tablets),
            # Widened by a day, then filtered exactly, as the roll-up does (offset-written ts).
            TabletEvent.ts >= rollup._ts_bound(start - timedelta(days=1)),
            TabletEvent.ts < rollup._ts_bound(end + timedelta(days=1)),
            TabletEvent.type.in_([rollup.ACTIVITY_STARTED, rollup.ACTIVITY_STOPPED]),
            TabletEvent.data["resident_id"].as_string() == resident_id,
        )
        for event_type, ts, activity, seconds in session.execute(events):
            moment = rollup.parse_ts(ts)
            if moment is not None and rollup.local_day(moment, tz) == day:
                rollup._fold_event(figures, event_type, activity, seconds)
                found = True
    if not found:
        return None
    return Figures(
        calls_made=figures.calls_made,
        calls_received=figures.calls_received,
        calls_missed=figures.calls_missed,
        call_seconds=figures.call_seconds,
        activity_seconds=figures.activity_seconds,
        activities=dict(figures.activities),
    )


# -- weekly figures ------------------------------------------------------------------------------


def _daily_rows(
    session: Session, *, home_id: str, since: date, until: date, resident_id: str | None
) -> Iterable[Any]:
    query = select(
        UsageDaily.resident_id,
        UsageDaily.day,
        UsageDaily.calls_made,
        UsageDaily.calls_received,
        UsageDaily.calls_missed,
        UsageDaily.call_seconds,
        UsageDaily.activity_seconds,
        UsageDaily.activities,
    ).where(UsageDaily.day >= since, UsageDaily.day < until)
    query = query.where(UsageDaily.home_id == home_id)  # the unique (home, resident, day) index
    if resident_id is not None:
        query = query.where(UsageDaily.resident_id == resident_id)
    return session.execute(query)


def weekly_by_resident(
    session: Session,
    *,
    home: Home,
    weeks: int = WEEKS,
    resident_id: str | None = None,
    today: date | None = None,
) -> tuple[list[date], dict[str, list[Figures]]]:
    """The Mondays of the period and, per resident, one :class:`Figures` per week.

    Past days from ``usage_daily``; today from the detailed rows.
    """
    today = today or local_today(home)
    starts = week_starts(today, weeks)
    index = {start: n for n, start in enumerate(starts)}
    per_resident: dict[str, list[Figures]] = {}

    def slot(rid: str, day: date) -> Figures | None:
        n = index.get(monday(day))
        if n is None:
            return None
        return per_resident.setdefault(rid, [Figures() for _ in starts])[n]

    first = starts[0]
    empty = len(starts)
    # A tight loop: a home's 12 weeks are thousands of rows, summed in place.
    for rid, day, made, received, missed, seconds, activity_seconds, activities in _daily_rows(
        session, home_id=home.id, since=first, until=today, resident_id=resident_id
    ):
        n = (day - first).days // 7
        if not 0 <= n < empty:
            continue
        weeks_of = per_resident.get(rid)
        if weeks_of is None:
            weeks_of = per_resident[rid] = [Figures() for _ in starts]
        target = weeks_of[n]
        target.calls_made += made
        target.calls_received += received
        target.calls_missed += missed
        target.call_seconds += seconds
        target.activity_seconds += activity_seconds
        if activities:
            opened = target.activities
            for key, times in activities.items():
                opened[key] = opened.get(key, 0) + int(times)
    if resident_id is not None:
        todays = resident_day_from_detail(session, home=home, day=today, resident_id=resident_id)
        detail = {resident_id: todays} if todays is not None else {}
    else:
        detail = day_from_detail(session, home=home, day=today)
    for rid, figures in detail.items():
        target = slot(rid, today)
        if target is not None:
            target.add(figures)
    return starts, per_resident


def weekly(
    session: Session,
    *,
    home: Home,
    weeks: int = WEEKS,
    resident_id: str | None = None,
    today: date | None = None,
) -> list[Week]:
    """One resident's weeks (``resident_id``) or the whole home's, oldest first."""
    starts, per_resident = weekly_by_resident(
        session, home=home, weeks=weeks, resident_id=resident_id, today=today
    )
    totals = [Figures() for _ in starts]
    for figures in per_resident.values():
        for total, week in zip(totals, figures, strict=True):
            total.add(week)
    return [Week(start, total) for start, total in zip(starts, totals, strict=True)]


# -- isolation -----------------------------------------------------------------------------------


@dataclass
class IsolationAlert:
    """A resident with no call (made or answered) for at least their home's ``isolation_days``."""

    resident_id: str
    name: str
    home_id: str
    home_name: str
    last_call: date | None  # None: no call on record
    since: date  # the last call, or the day the resident was added
    days: int


@dataclass
class NoContact:
    resident_id: str
    name: str
    home_id: str
    home_name: str


def _full_name(first: str, last: str) -> str:
    return f"{first} {last}".strip()


def isolation_alerts(
    session: Session, *, home_ids: set[str] | None, now: datetime | None = None
) -> list[IsolationAlert]:
    """Residents of these homes (None: every home) with no call for their home's N days,
    the longest silence first."""
    now = now or utcnow()
    homes = {
        h.id: h
        for h in session.scalars(
            select(Home).where(Home.id.in_(home_ids or {""}))
            if home_ids is not None
            else select(Home)
        )
    }
    if not homes:
        return []
    # Homes by the first day that keeps a resident off the list (today - N + 1): usually one
    # group (same N, same time zone), so one query whatever the number of homes.
    groups: dict[date, list[str]] = {}
    for home in homes.values():
        today = now.astimezone(ZoneInfo(home.timezone)).date()
        groups.setdefault(today - timedelta(days=home.isolation_days - 1), []).append(home.id)
    # Calls not rolled up yet: the roll-up runs every hour (backend/services/retention.py), so
    # only today and, just after midnight, yesterday are missing from usage_daily. One step in
    # ix_calls_resident_created per candidate, in the same query (no list of ids sent back).
    recent_call = (
        select(func.max(Call.created_at))
        .where(
            Call.resident_id == Resident.id,
            Call.created_at >= now - timedelta(days=DETAIL_DAYS),
            or_(
                Call.direction == CallDirection.FROM_RESIDENT.value,
                Call.answer_at.is_not(None),
            ),
        )
        .correlate(Resident)
        .scalar_subquery()
    )
    candidates: list[Any] = []
    for keep_from, ids in groups.items():
        # The last rolled-up day with a call is kept on the resident's row by the roll-up
        # (Resident.last_call_day, migration 0010): the candidates are one scan of the homes'
        # residents, whatever the number of usage rows.
        query = select(
            Resident.id,
            Resident.first_name,
            Resident.last_name,
            Resident.home_id,
            Resident.created_at,
            Resident.last_call_day,
            recent_call.label("recent_call"),
        ).where(
            Resident.active,
            or_(Resident.last_call_day.is_(None), Resident.last_call_day < keep_from),
        )
        if home_ids is not None or len(groups) > 1:
            query = query.where(Resident.home_id.in_(ids))
        candidates += session.execute(query).all()
    if not candidates:
        return []
    alerts: list[IsolationAlert] = []
    for rid, first, last, home_id, created_at, rolled_day, detail in candidates:
        found = homes.get(home_id)
        if found is None:  # a home added since they were read
            continue
        home = found
        zone = ZoneInfo(home.timezone)
        today = now.astimezone(zone).date()
        last_call: date | None = rolled_day
        if detail is not None:
            if detail.tzinfo is None:  # max() bypasses the column type on SQLite
                detail = detail.replace(tzinfo=UTC)
            detail_day = detail.astimezone(zone).date()
            last_call = detail_day if last_call is None else max(last_call, detail_day)
        since = last_call
        if since is None:
            since = created_at.astimezone(zone).date() if created_at is not None else today
        days = (today - since).days
        if days >= home.isolation_days:
            alerts.append(
                IsolationAlert(
                    resident_id=rid,
                    name=_full_name(first, last),
                    home_id=home_id,
                    home_name=home.name,
                    last_call=last_call,
                    since=since,
                    days=days,
                )
            )
    alerts.sort(key=lambda a: (-a.days, a.home_name, a.name))
    return alerts


def residents_without_contact(session: Session, *, home_ids: set[str] | None) -> list[NoContact]:
    """Active residents with no approved contact: nobody can call them, they can call nobody."""
    approved = exists().where(
        and_(
            Approval.resident_id == Resident.id,
            Approval.status == ApprovalStatus.APPROVED.value,
        )
    )
    query = (
        select(Resident.id, Resident.first_name, Resident.last_name, Home.id, Home.name)
        .join(Home, Home.id == Resident.home_id)
        .where(Resident.active, ~approved)
        .order_by(Home.name, Resident.first_name, Resident.last_name)
    )
    if home_ids is not None:
        query = query.where(Resident.home_id.in_(home_ids or {""}))
    return [
        NoContact(resident_id=rid, name=_full_name(first, last), home_id=hid, home_name=hname)
        for rid, first, last, hid, hname in session.execute(query)
    ]


def last_call_day(
    session: Session, *, resident: Resident, now: datetime | None = None
) -> date | None:
    """The local day of the resident's last call made or answered (None: none on record)."""
    now = now or utcnow()
    zone = ZoneInfo(resident.home.timezone)
    rolled = resident.last_call_day  # kept by the roll-up (rollup.refresh_last_call_days)
    detail = session.scalar(
        select(func.max(Call.created_at)).where(
            Call.resident_id == resident.id,
            or_(
                Call.direction == CallDirection.FROM_RESIDENT.value,
                Call.answer_at.is_not(None),
            ),
        )
    )
    days = [d for d in (rolled, detail.astimezone(zone).date() if detail else None) if d]
    return max(days) if days else None
