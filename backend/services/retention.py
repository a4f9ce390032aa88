"""Retention: detailed usage rows older than a home's ``retention_days`` are folded into
``usage_daily``, then deleted.

What is detail, and goes after ``Home.retention_days`` (90 by default, per home):

- the call log (``calls``): who called whom, when, how long, how it ended;
- the tablet events (``tablet_events``): activities opened and closed, hearts, heartbeats,
  contact requests' events, everything the tablets report.

What stays (and why), written down in ``docs/privacy.md`` and on the ``/confidentialite`` page:

- ``usage_daily``: one row per resident and day, counts and seconds only;
- the audit log of staff decisions (approvals, revocations, erasures...): the home must be able
  to show who decided what about a child or a vulnerable adult for years (the legal retention of
  such records is longer than 90 days); it holds ids and decisions, never usage;
- contact requests and photos follow their own life (decided by staff, refused photos lose their
  files at once) and go when the resident is erased.

A day is deleted **only after** it is folded, in the same transaction, one transaction per home
(nothing half-done if the process dies), under the home's row lock (``rollup.lock_home``; on
PostgreSQL a replica that finds the home locked skips it: the other one is doing it). Each run
that deletes something writes an audit entry ``retention.folded`` with the last day it sealed
(``through_day``) and the counts; that entry is the home's *sealed horizon*: the roll-up never
recomputes a day up to it, and a late event for a sealed day is added to the day's figures.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import Call, Home, TabletEvent, UsageDaily, utcnow
from backend.services import audit, rollup
from backend.services.errors import NotFound, ServiceError

log = logging.getLogger(__name__)

ACTOR = "system:retention"
MIN_DAYS, MAX_DAYS = 7, 3650
# Rows arrived in this window have their days rolled up again at each run (a run an hour).
RECENT = timedelta(hours=26)


@dataclass
class HomeRun:
    """What one run did for one home."""

    home_id: str
    retention_days: int
    keep_from: str  # the oldest local day whose detail is kept
    rolled_up_rows: int = 0
    folded_days: list[str] = field(default_factory=list)
    late_days: list[str] = field(default_factory=list)
    calls_deleted: int = 0
    events_deleted: int = 0
    sealed_through: str | None = None
    skipped: bool = False  # another replica held the home
    error: str = ""  # the run failed for this home and was rolled back (logged)


def set_retention_days(*, session: Session, home_id: str, days: int, by: str) -> Home:
    """Change how long a home keeps detailed usage rows (audited)."""
    home = session.get(Home, home_id)
    if home is None:
        raise NotFound(f"Home {home_id} not found")
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ServiceError(
            f"The retention must be between {MIN_DAYS} and {MAX_DAYS} days (given: {days})."
        )
    before = home.retention_days
    home.retention_days = days
    audit.record(
        session=session,
        actor=by,
        action="home.retention_set",
        target_type="home",
        target_id=home.id,
        home_id=home.id,
        details={"from": before, "to": days},
    )
    return home


def _lock(session: Session, home_id: str, *, skip_locked: bool) -> bool:
    """Take the home's lock; False when another replica holds it (PostgreSQL, skip_locked)."""
    if skip_locked and session.get_bind().dialect.name == "postgresql":
        got = session.scalar(
            select(Home.id).where(Home.id == home_id).with_for_update(skip_locked=True)
        )
        if got is None:
            return False
    rollup.lock_home(session, home_id)
    return True


def _recent_since(session: Session, home: Home, now: datetime, yesterday: date) -> date:
    """The oldest day touched by rows arrived lately (a tablet back online after a week)."""
    tz = ZoneInfo(home.timezone)
    since = yesterday
    tablets = rollup.home_tablet_ids(session, home.id)
    if tablets:
        oldest = session.scalar(
            select(TabletEvent.ts)
            .where(TabletEvent.tablet_id.in_(tablets), TabletEvent.received_at >= now - RECENT)
            .order_by(TabletEvent.ts)
            .limit(1)
        )
        moment = rollup.parse_ts(oldest) if oldest else None
        if moment is not None:
            since = min(since, rollup.local_day(moment, tz))
    return since


def _add_late(session: Session, home_id: str, late: dict[rollup.DayKey, rollup.Figures]) -> None:
    """Add figures of late detail to days already sealed (their own detail is gone)."""
    totals: dict[rollup.DayKey, rollup.Figures] = {}
    for (rid, day), figures in late.items():
        row = session.scalar(
            select(UsageDaily).where(
                UsageDaily.home_id == home_id, UsageDaily.resident_id == rid, UsageDaily.day == day
            )
        )
        total = rollup.Figures.of_row(row) if row is not None else rollup.Figures()
        total.add(figures)
        totals[(rid, day)] = total
    rollup.upsert(session, home_id, totals)


def _delete_ids(session: Session, model: Any, ids: list[str]) -> int:
    for i in range(0, len(ids), 500):
        session.execute(delete(model).where(model.id.in_(ids[i : i + 500])))
    return len(ids)


def run_home(
    session: Session, home: Home, *, now: datetime | None = None, skip_locked: bool = False
) -> HomeRun:
    """Roll up the home's recent days, then fold and delete its detail older than its retention.

    The caller commits: everything here is one transaction.
    """
    now = now or utcnow()
    tz = ZoneInfo(home.timezone)
    today = rollup.local_day(now, tz)
    keep_from = today - timedelta(days=home.retention_days)
    result = HomeRun(
        home_id=home.id, retention_days=home.retention_days, keep_from=keep_from.isoformat()
    )
    if not _lock(session, home.id, skip_locked=skip_locked):
        result.skipped = True
        return result
    session.refresh(home)
    yesterday = today - timedelta(days=1)
    sealed = rollup.sealed_through(session, home.id)

    # 1. The complete days since the last day rolled up (the process may have been down), and
    # the days of late events; today is computed live by the charts. Nothing rolled up yet: all.
    last = session.scalar(select(func.max(UsageDaily.day)).where(UsageDaily.home_id == home.id))
    since: date | None = None
    if last is not None:
        since = min(_recent_since(session, home, now, yesterday), last)
    result.rolled_up_rows = rollup.roll_up(session, home, yesterday, since_day=since).rows

    # 2. Everything before keep_from: fold, then delete exactly the rows that were folded.
    detail = rollup.collect(session, home, None, keep_from - timedelta(days=1), with_ids=True)
    if not detail.call_ids and not detail.event_ids:
        return result
    fresh = {k: f for k, f in detail.figures.items() if sealed is None or k[1] > sealed}
    late = {k: f for k, f in detail.figures.items() if sealed is not None and k[1] <= sealed}
    rollup.upsert(session, home.id, fresh)
    _add_late(session, home.id, late)
    result.folded_days = sorted(d.isoformat() for d in detail.days if sealed is None or d > sealed)
    result.late_days = sorted(
        d.isoformat() for d in detail.days if sealed is not None and d <= sealed
    )
    result.calls_deleted = _delete_ids(session, Call, detail.call_ids)
    result.events_deleted = _delete_ids(session, TabletEvent, detail.event_ids)
    through = keep_from - timedelta(days=1)
    if sealed is not None and sealed > through:
        through = sealed  # the retention was made longer: what is gone stays gone
    result.sealed_through = through.isoformat()
    audit.record(
        session=session,
        actor=ACTOR,
        action=rollup.SEALED_ACTION,
        target_type="home",
        target_id=home.id,
        home_id=home.id,
        details={
            "through_day": through.isoformat(),
            "retention_days": home.retention_days,
            "folded_days": len(result.folded_days),
            "late_days": len(result.late_days),
            "calls_deleted": result.calls_deleted,
            "events_deleted": result.events_deleted,
        },
    )
    return result


def run(db: Database, *, now: datetime | None = None, skip_locked: bool = True) -> list[HomeRun]:
    """One run over every home, one transaction each; returns what was done."""
    with db.session() as session:
        home_ids = list(session.scalars(select(Home.id).order_by(Home.id)))
    results = []
    for home_id in home_ids:
        try:
            with db.session() as session:
                home = session.get(Home, home_id)
                if home is None:
                    continue
                results.append(run_home(session, home, now=now, skip_locked=skip_locked))
        except Exception as exc:
            # One home's failure (rolled back whole) must not stop the others.
            log.exception("retention run failed for home %s", home_id)
            results.append(HomeRun(home_id=home_id, retention_days=0, keep_from="", error=str(exc)))
    return results


def report(results: list[HomeRun]) -> dict[str, Any]:
    """The JSON ``liens admin retention run`` prints."""
    return {
        "homes": [asdict(r) for r in results],
        "calls_deleted": sum(r.calls_deleted for r in results),
        "events_deleted": sum(r.events_deleted for r in results),
        "rolled_up_rows": sum(r.rolled_up_rows for r in results),
        "errors": sum(1 for r in results if r.error),
    }


class RetentionJob:
    """The periodic run inside the backend: a daemon thread, every ``interval`` seconds.

    Safe with several replicas: each home is done under its lock, and a replica that finds it
    taken (PostgreSQL) moves on; a second run right after the first finds nothing to do.
    """

    def __init__(self, db: Database, *, interval: float = 3600.0, first_delay: float = 60.0):
        self.db = db
        self.interval = interval
        self.first_delay = first_delay
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="liens-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        delay = self.first_delay
        while not self._stop.wait(delay):
            delay = self.interval
            try:
                summary = report(run(self.db))
                self.runs += 1
                if summary["calls_deleted"] or summary["events_deleted"]:
                    log.info(
                        "retention: %d calls and %d events folded and deleted",
                        summary["calls_deleted"],
                        summary["events_deleted"],
                    )
            except Exception:
                log.exception("retention run failed")
