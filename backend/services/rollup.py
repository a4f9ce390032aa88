"""Daily usage figures per resident, folded from the call log and the tablet events.

Staff charts read ``usage_daily`` (one row per resident and local day of their home); the
retention job (``backend.services.retention``) deletes the detailed rows once their days are
folded here. The figures of one resident on one day are defined as follows:

- ``calls_made``: calls from the resident (``Call.direction == "from_resident"``), answered or
  not, counted on the local day the call was placed (``Call.created_at``).
- ``calls_received``: calls to the resident that were answered (``answer_at`` set).
- ``calls_missed``: calls to the resident never answered (declined, unanswered, tablet offline,
  cancelled by the caller). A call still ringing counts as missed until it is answered: on a past
  day that cannot happen.
- ``call_seconds``: connected seconds of the resident's calls, both ways (``Call.duration_s`` of
  answered calls; a call under way counts 0 until it ends). The whole call belongs to the day it
  was placed, even when it goes on past midnight: a day's figures then depend only on that day's
  rows, so a day can be recomputed, or sealed by the retention job, on its own.
- ``activities``: ``{activity key: times opened}`` from ``activity_started`` events.
- ``activity_seconds``: the sum of ``activity_stopped.duration_s`` (clamped to 0..24 h).

Days are the home's local days (``Home.timezone``, through ``zoneinfo``: a DST change day has 23
or 25 hours). An event's moment is its ``ts`` (when it happened on the tablet), not when the
backend received it. Events name their resident in ``data.resident_id``; an event naming no
resident of the home (heartbeats, ``kiosk_left``...) has no figure.

Sealed days: once the retention job has deleted a day's detail, only its aggregate is left, so
:func:`roll_up` never recomputes a day at or before the home's *sealed horizon*
(:func:`sealed_through`): it would write a smaller figure over the true one. A late event (a
tablet offline for weeks) for a sealed day is *added* to that day by the retention job.

Idempotence: rows are written with an upsert on the unique (home, resident, day) key
(``INSERT … ON CONFLICT DO UPDATE`` on PostgreSQL and SQLite), in a stable order, after taking
the home's row lock (:func:`lock_home`), so two replicas rolling up at once write the same rows
one after the other, never a duplicate and never a deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from backend.models import (
    AuditEntry,
    Call,
    CallDirection,
    Home,
    Resident,
    Tablet,
    TabletEvent,
    UsageDaily,
    utcnow,
)

ACTIVITY_STARTED = "activity_started"
ACTIVITY_STOPPED = "activity_stopped"
MAX_ACTIVITY_SECONDS = 24 * 3600
ACTIVITY_KEY_MAX = 50
# The audit action the retention job writes when it deletes a home's detail up to a day.
SEALED_ACTION = "retention.folded"


@dataclass
class Figures:
    """One resident's usage on one local day (the columns of ``usage_daily``)."""

    calls_made: int = 0
    calls_received: int = 0
    calls_missed: int = 0
    call_seconds: int = 0
    activities: dict[str, int] = field(default_factory=dict)
    activity_seconds: int = 0

    def add(self, other: Figures) -> None:
        self.calls_made += other.calls_made
        self.calls_received += other.calls_received
        self.calls_missed += other.calls_missed
        self.call_seconds += other.call_seconds
        for key, count in other.activities.items():
            self.activities[key] = self.activities.get(key, 0) + count
        self.activity_seconds += other.activity_seconds

    def as_columns(self) -> dict[str, Any]:
        return {
            "calls_made": self.calls_made,
            "calls_received": self.calls_received,
            "calls_missed": self.calls_missed,
            "call_seconds": self.call_seconds,
            "activities": dict(sorted(self.activities.items())),
            "activity_seconds": self.activity_seconds,
        }

    @classmethod
    def of_row(cls, row: UsageDaily) -> Figures:
        return cls(
            calls_made=row.calls_made,
            calls_received=row.calls_received,
            calls_missed=row.calls_missed,
            call_seconds=row.call_seconds,
            activities={str(k): int(v) for k, v in (row.activities or {}).items()},
            activity_seconds=row.activity_seconds,
        )


DayKey = tuple[str, date]  # (resident_id, local day)


@dataclass
class Detail:
    """The detailed rows of some days of one home, and the figures they make."""

    figures: dict[DayKey, Figures]
    call_ids: list[str]
    event_ids: list[str]
    # Every local day that has at least one detailed row (with or without a figure); the ids and
    # days are filled only when asked for (``with_ids``).
    days: set[date]


@dataclass(frozen=True)
class RollUp:
    """What :func:`roll_up` did for one home."""

    home_id: str
    first_day: date | None
    last_day: date
    rows: int


# -- local days ---------------------------------------------------------------------------------


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant the local ``day`` begins (DST-correct)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def parse_ts(value: str) -> datetime | None:
    """An event's ``ts`` (ISO 8601, 'Z' or an offset) as an aware UTC datetime; None if invalid."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _ts_bound(moment: datetime) -> str:
    # Tablets write ts as UTC 'YYYY-MM-DDTHH:MM:SS.mmmZ', which sorts as text; the bounds are
    # widened by a day so an offset-written ts is still fetched, then filtered exactly.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# -- computing ---------------------------------------------------------------------------------


def home_tablet_ids(session: Session, home_id: str) -> list[str]:
    return list(session.scalars(select(Tablet.id).where(Tablet.home_id == home_id)))


def home_resident_ids(session: Session, home_id: str) -> set[str]:
    return set(session.scalars(select(Resident.id).where(Resident.home_id == home_id)))


def _fold_call(figures: Figures, direction: str, answered: bool, duration_s: int | None) -> None:
    if direction == CallDirection.FROM_RESIDENT.value:
        figures.calls_made += 1
    elif answered:
        figures.calls_received += 1
    else:
        figures.calls_missed += 1
    if answered and duration_s:
        figures.call_seconds += max(0, int(duration_s))


def _number(value: Any) -> float | None:
    """A JSON number as extracted by the database (a number, or its text on PostgreSQL)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is no duration


def _fold_event(figures: Figures, event_type: str, activity: Any, seconds: Any) -> None:
    if event_type == ACTIVITY_STARTED:
        if activity is not None and not isinstance(activity, bool) and str(activity):
            key = str(activity)[:ACTIVITY_KEY_MAX]
            figures.activities[key] = figures.activities.get(key, 0) + 1
    elif event_type == ACTIVITY_STOPPED:
        number = _number(seconds)
        if number is not None:
            figures.activity_seconds += int(min(max(number, 0), MAX_ACTIVITY_SECONDS))


def collect(
    session: Session,
    home: Home,
    first_day: date | None,
    last_day: date,
    *,
    with_ids: bool = False,
) -> Detail:
    """The figures of ``home``'s detailed rows from ``first_day`` (None: the oldest) to
    ``last_day``; with ``with_ids``, also the ids of every row of those days (all event types,
    heartbeats included), which the retention job deletes.

    Columns only, and the event fields extracted by the database (``json_extract`` / ``->>``):
    no ORM objects and no JSON decoding in Python, so a home's 90 days fold in seconds.
    """
    tz = ZoneInfo(home.timezone)
    residents = home_resident_ids(session, home.id)
    end = day_start(last_day + timedelta(days=1), tz)
    start = day_start(first_day, tz) if first_day is not None else None

    def wanted(day: date) -> bool:
        return (first_day is None or day >= first_day) and day <= last_day

    figures: dict[DayKey, Figures] = {}
    call_ids: list[str] = []
    event_ids: list[str] = []
    days: set[date] = set()

    call_query = (
        select(
            Call.id,
            Call.resident_id,
            Call.direction,
            Call.created_at,
            Call.answer_at,
            Call.duration_s,
        )  # fmt: skip
        .join(Resident, Resident.id == Call.resident_id)
        .where(Resident.home_id == home.id, Call.created_at < end)
    )
    if start is not None:
        call_query = call_query.where(Call.created_at >= start)
    for call_id, resident_id, direction, created_at, answer_at, duration_s in session.execute(
        call_query
    ):
        day = local_day(created_at, tz)
        if not wanted(day):
            continue
        if with_ids:
            call_ids.append(call_id)
            days.add(day)
        _fold_call(
            figures.setdefault((resident_id, day), Figures()),
            direction,
            answer_at is not None,
            duration_s,
        )

    tablets = home_tablet_ids(session, home.id)
    if tablets:
        bounds = [
            TabletEvent.tablet_id.in_(tablets),
            TabletEvent.ts < _ts_bound(end + timedelta(days=1)),
        ]
        if start is not None:
            bounds.append(TabletEvent.ts >= _ts_bound(start - timedelta(days=1)))
        activity_query = select(
            TabletEvent.type,
            TabletEvent.ts,
            TabletEvent.data["resident_id"].as_string(),
            TabletEvent.data["activity"].as_string(),
            TabletEvent.data["duration_s"].as_string(),
        ).where(*bounds, TabletEvent.type.in_([ACTIVITY_STARTED, ACTIVITY_STOPPED]))
        for event_type, ts, resident_id, activity, seconds in session.execute(activity_query):
            moment = parse_ts(ts)
            if moment is None or resident_id not in residents:
                continue
            day = local_day(moment, tz)
            if wanted(day):
                _fold_event(
                    figures.setdefault((str(resident_id), day), Figures()),
                    event_type,
                    activity,
                    seconds,
                )
        if with_ids:
            for event_id, ts in session.execute(
                select(TabletEvent.id, TabletEvent.ts).where(*bounds)
            ):
                moment = parse_ts(ts)
                if moment is None:
                    continue
                day = local_day(moment, tz)
                if wanted(day):
                    event_ids.append(event_id)
                    days.add(day)
    return Detail(figures=figures, call_ids=call_ids, event_ids=event_ids, days=days)


def day_figures(
    session: Session, home: Home, first_day: date, last_day: date
) -> dict[DayKey, Figures]:
    """Every resident's figures on each local day from ``first_day`` to ``last_day`` (included),
    computed from the detailed rows (see the module's docstring for the definitions).

    Only (resident, day) pairs with at least one call or activity event appear. Days whose detail
    the retention job already deleted come out empty: read ``usage_daily`` for those.
    """
    return collect(session, home, first_day, last_day).figures


# -- writing -----------------------------------------------------------------------------------


def lock_home(session: Session, home_id: str) -> None:
    """Serialise roll-ups and retention runs of one home across replicas, until the commit.

    A no-op write to the home's row: PostgreSQL locks the row (another replica waits, then sees
    what this one committed); SQLite takes its database write lock *before* anything is read, so
    a second writer waits (busy timeout) instead of failing on a stale snapshot.
    """
    session.execute(
        update(Home).where(Home.id == home_id).values(retention_days=Home.retention_days)
    )


def sealed_through(session: Session, home_id: str) -> date | None:
    """The last local day whose detail the retention job deleted (None: never)."""
    entries = session.scalars(
        select(AuditEntry.details).where(
            AuditEntry.home_id == home_id, AuditEntry.action == SEALED_ACTION
        )
    )
    sealed: date | None = None
    for details in entries:
        value = (details or {}).get("through_day")
        try:
            day = date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            day = None
        if day is not None and (sealed is None or day > sealed):
            sealed = day
    return sealed


def upsert(session: Session, home_id: str, figures: dict[DayKey, Figures]) -> int:
    """Write these rows of ``usage_daily`` (insert, or replace the figures); returns how many."""
    if not figures:
        return 0
    now = utcnow()
    rows = [
        {"home_id": home_id, "resident_id": rid, "day": day, "rolled_up_at": now, **f.as_columns()}
        for (rid, day), f in sorted(figures.items())
    ]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        insert: Any = pg_insert(UsageDaily)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = sqlite_insert(UsageDaily)
    columns = [*Figures().as_columns(), "rolled_up_at"]
    statement = insert.on_conflict_do_update(
        index_elements=["home_id", "resident_id", "day"],
        set_={name: getattr(insert.excluded, name) for name in columns},
    )
    for chunk in _chunks(rows, 500):
        session.execute(statement, chunk)
    refresh_last_call_days(session, {rid for rid, _day in figures})
    return len(rows)


def refresh_last_call_days(session: Session, resident_ids: Iterable[str] | None) -> None:
    """Set ``Resident.last_call_day`` to the last day of ``usage_daily`` with a call made or
    answered, for these residents (None: every resident).

    Recomputed from the rows rather than moved forward: a day written again with fewer calls
    (never seen, but possible) leaves the right value too. One backward step per resident in
    the partial index ``ix_usage_daily_calls``. :func:`upsert` calls it for the residents it
    wrote; anything else that writes ``usage_daily`` in bulk (a bench's COPY) must call it.
    """
    last_day = (
        select(func.max(UsageDaily.day))
        .where(
            UsageDaily.resident_id == Resident.id,
            or_(UsageDaily.calls_made > 0, UsageDaily.calls_received > 0),
        )
        .correlate(Resident)
        .scalar_subquery()
    )
    statement = update(Resident).values(last_call_day=last_day)
    if resident_ids is None:
        session.execute(statement)
        return
    # A stable order, so that two transactions updating the same residents never deadlock.
    for chunk in _chunks(sorted(set(resident_ids)), 500):
        session.execute(statement.where(Resident.id.in_(chunk)))


def earliest_detail_day(session: Session, home: Home) -> date | None:
    """The local day of the home's oldest call or event still stored."""
    tz = ZoneInfo(home.timezone)
    days: list[date] = []
    oldest_call = session.scalar(
        select(func.min(Call.created_at))
        .join(Resident, Resident.id == Call.resident_id)
        .where(Resident.home_id == home.id)
    )
    if oldest_call is not None:
        if oldest_call.tzinfo is None:  # min() bypasses the column type on SQLite
            oldest_call = oldest_call.replace(tzinfo=UTC)
        days.append(local_day(oldest_call, tz))
    tablets = home_tablet_ids(session, home.id)
    if tablets:
        oldest_ts = session.scalar(
            select(func.min(TabletEvent.ts)).where(TabletEvent.tablet_id.in_(tablets))
        )
        moment = parse_ts(oldest_ts) if oldest_ts else None
        if moment is not None:
            # Widened by a day: a ts written with an offset may sort after an older one.
            days.append(local_day(moment, tz) - timedelta(days=1))
    return min(days) if days else None


def roll_up(
    session: Session, home: Home, until_day: date, *, since_day: date | None = None
) -> RollUp:
    """Upsert ``usage_daily`` for every day of ``home`` up to ``until_day`` that has detail.

    From ``since_day`` (default: the oldest detail still stored), never at or before the sealed
    horizon. Running it twice, or on two replicas at once, gives the same rows. The caller
    commits (the rows and the lock go together).
    """
    lock_home(session, home.id)
    first = since_day if since_day is not None else earliest_detail_day(session, home)
    sealed = sealed_through(session, home.id)
    if sealed is not None:
        first = max(first, sealed + timedelta(days=1)) if first else sealed + timedelta(days=1)
    if first is None or first > until_day:
        return RollUp(home_id=home.id, first_day=None, last_day=until_day, rows=0)
    figures = day_figures(session, home, first, until_day)
    return RollUp(
        home_id=home.id, first_day=first, last_day=until_day, rows=upsert(session, home.id, figures)
    )


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
