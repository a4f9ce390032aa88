"""``Resident.last_call_day`` (migration 0010), kept by the roll-up, and the isolation alerts
that read it: the column always equals the last day of ``usage_daily`` with a call (after a
roll-up, after retention folded late detail, after a resident's erasure, after the migration's
backfill), and the alerts are exactly what the previous query (a search through ``usage_daily``,
kept below as the reference) gave, on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from backend.db import MIGRATIONS, Database
from backend.models import (
    Approval,
    Call,
    CallDirection,
    Contact,
    Home,
    Resident,
    Tablet,
    UsageDaily,
    new_id,
    utcnow,
)
from backend.services import retention, rollup, subject
from backend.services.usage import DETAIL_DAYS, IsolationAlert, _full_name, isolation_alerts
from backend.settings import Settings
from tests.integration.test_postgres import postgres_url  # noqa: F401

FEW_HOMES = 2  # the previous query's threshold (20): 2, so that both of its ways are compared
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


# -- the previous query, verbatim (backend/services/usage.py before migration 0010) ---------------


def previous_isolation_alerts(
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
    had_a_call = or_(UsageDaily.calls_made > 0, UsageDaily.calls_received > 0)
    # Homes by the first day that keeps a resident off the list (today - N + 1): usually one
    # group (same N, same time zone), so one query whatever the number of homes.
    groups: dict[date, list[str]] = {}
    for home in homes.values():
        today = now.astimezone(ZoneInfo(home.timezone)).date()
        groups.setdefault(today - timedelta(days=home.isolation_days - 1), []).append(home.id)
    # The last rolled-up day with a call: one backward step in the partial index
    # ix_usage_daily_calls (migration 0009), evaluated for the candidates only.
    last_day = (
        select(func.max(UsageDaily.day))
        .where(UsageDaily.resident_id == Resident.id, had_a_call)
        .correlate(Resident)
        .scalar_subquery()
    )
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
        # Residents with a rolled-up call since keep_from are not candidates: NOT IN over the
        # recent call days, which PostgreSQL hashes once, instead of one look-up per resident.
        # For a few homes, their rows through ix_usage_daily_home_day; for many (a
        # département: 28,000 call days a week), every home's recent call days read from the
        # partial index ix_usage_daily_call_days alone (an index-only scan, 3x faster than
        # fetching those rows to check their home; the outer query keeps to these homes).
        called = select(UsageDaily.resident_id).where(UsageDaily.day >= keep_from, had_a_call)
        if len(ids) <= FEW_HOMES:
            called = called.where(UsageDaily.home_id.in_(ids))
        candidates += session.execute(
            select(
                Resident.id,
                Resident.first_name,
                Resident.last_name,
                Resident.home_id,
                Resident.created_at,
                last_day.label("last_day"),
                recent_call.label("recent_call"),
            ).where(Resident.active, Resident.home_id.in_(ids), Resident.id.not_in(called))
        ).all()
    if not candidates:
        return []
    alerts: list[IsolationAlert] = []
    for rid, first, last, home_id, created_at, rolled_day, detail in candidates:
        home = homes[home_id]
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


# -- seeding ---------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'liens.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Database(url)
    db.migrate()
    yield db
    db.engine.dispose()


# (name, time zone, isolation days)
HOMES = (
    ("Les Tilleuls", "Europe/Paris", 7),
    ("Les Glycines", "Europe/Paris", 3),
    ("Bellevue", "America/Martinique", 7),
)


def local_today(home: Home) -> date:
    return NOW.astimezone(ZoneInfo(home.timezone)).date()


def add_call(
    s: Session, resident: Resident, approval: str, at: datetime, *, direction: str, answered: bool
) -> None:
    s.add(
        Call(
            id=new_id(),
            direction=direction,
            resident_id=resident.id,
            contact_id=approval.split(":")[0],
            approval_id=approval.split(":")[1],
            created_at=at,
            ring_at=at,
            answer_at=at + timedelta(seconds=5) if answered else None,
            end_at=at + timedelta(seconds=65),
            duration_s=60 if answered else None,
            outcome="completed" if answered else "missed",
        )
    )


def seed(db: Database) -> dict[str, Any]:
    """Three homes of 25 residents: a past of usage_daily written by the roll-up's upsert (calls,
    missed calls only, activities only, nothing), calls of the last days not rolled up yet (some
    missed), inactive residents, residents never called."""
    rng = random.Random(10)
    homes: list[str] = []
    residents: dict[str, list[str]] = {}
    with db.session() as s:
        for name, timezone, days in HOMES:
            home = Home(name=name, timezone=timezone, isolation_days=days, retention_days=90)
            s.add(home)
            s.flush()
            homes.append(home.id)
            s.add(Tablet(home_id=home.id, name="Salon"))
            contact = Contact(home_id=home.id, display_name="Julie")
            s.add(contact)
            s.flush()
            today = local_today(home)
            figures: dict[rollup.DayKey, rollup.Figures] = {}
            for n in range(25):
                resident = Resident(
                    home_id=home.id,
                    first_name=f"Résident {n:02d}",
                    created_at=NOW - timedelta(days=rng.choice([2, 5, 30, 200])),
                    active=n != 3,
                )
                s.add(resident)
                s.flush()
                approval = Approval(resident_id=resident.id, contact_id=contact.id)
                s.add(approval)
                s.flush()
                residents.setdefault(home.id, []).append(resident.id)
                silent = rng.choice([0, 1, 2, 3, 4, 6, 7, 8, 12, 30, 60, 400])
                for back in range(1, 150):
                    roll = rng.random()
                    if roll > 0.3:
                        continue
                    if back < silent or roll > 0.2:
                        # No call made or answered that day: missed calls, activities.
                        day_figures = rollup.Figures(calls_missed=1, activities={"photos": 1})
                    else:
                        day_figures = rollup.Figures(
                            calls_made=int(roll < 0.1), calls_received=int(roll >= 0.1)
                        )
                    figures[(resident.id, today - timedelta(days=back))] = day_figures
                # The detail of the last days, not rolled up yet.
                pair = f"{contact.id}:{approval.id}"
                kind = n % 5
                if kind == 1:  # called today
                    add_call(
                        s,
                        resident,
                        pair,
                        NOW - timedelta(hours=2),
                        direction="to_resident",
                        answered=True,
                    )
                elif kind == 2:  # dialled yesterday, nobody answered: a call made all the same
                    add_call(
                        s,
                        resident,
                        pair,
                        NOW - timedelta(hours=30),
                        direction="from_resident",
                        answered=False,
                    )
                elif kind == 3:  # only missed calls today: not a call
                    add_call(
                        s,
                        resident,
                        pair,
                        NOW - timedelta(hours=1),
                        direction="to_resident",
                        answered=False,
                    )
                elif kind == 4:  # a missed call yesterday: rolled up, that day has no call left
                    add_call(
                        s,
                        resident,
                        pair,
                        NOW - timedelta(hours=26),
                        direction="to_resident",
                        answered=False,
                    )
            rollup.upsert(s, home.id, figures)
    return {"homes": homes, "residents": residents}


# -- checks -----------------------------------------------------------------------------------


def expected_last_call_days(s: Session) -> dict[str, date | None]:
    """What the column must say: the last day with a call in usage_daily, for every resident."""
    rolled = dict(
        s.execute(
            select(UsageDaily.resident_id, func.max(UsageDaily.day))
            .where(or_(UsageDaily.calls_made > 0, UsageDaily.calls_received > 0))
            .group_by(UsageDaily.resident_id)
        ).all()
    )
    return {rid: rolled.get(rid) for rid in s.scalars(select(Resident.id))}


def check(db: Database, homes: list[str]) -> list[IsolationAlert]:
    with db.session() as s:
        stored = dict(s.execute(select(Resident.id, Resident.last_call_day)).all())
        assert stored == expected_last_call_days(s)
        assert any(stored.values()) and None in stored.values()
        everyone = previous_isolation_alerts(s, home_ids=None, now=NOW)
        for home_ids in (None, {homes[0]}, {homes[1]}, set(homes[:2]), set(homes), set()):
            assert isolation_alerts(s, home_ids=home_ids, now=NOW) == previous_isolation_alerts(
                s, home_ids=home_ids, now=NOW
            ), home_ids
        return everyone


def test_last_call_day_follows_usage_daily_and_the_alerts_stay_the_same(
    database: Database, tmp_path: Path
) -> None:
    seeded = seed(database)
    homes = seeded["homes"]
    alerts = check(database, homes)
    # Not a vacuous comparison: every kind of silence is there.
    assert len(alerts) >= 15
    assert any(a.last_call is None for a in alerts) and any(a.last_call for a in alerts)
    assert {a.home_id for a in alerts} == set(homes)

    # The hourly job: yesterday's detail rolled up (a dialled call nobody answered counts), and
    # the detail older than 90 days (a call 120 days ago in each home) folded, then deleted.
    with database.session() as s:
        for home_id in homes:
            first = s.get(Resident, seeded["residents"][home_id][0])
            assert first is not None
            approval = s.scalar(select(Approval).where(Approval.resident_id == first.id))
            assert approval is not None
            add_call(
                s,
                first,
                f"{approval.contact_id}:{approval.id}",
                NOW - timedelta(days=120),
                direction="to_resident",
                answered=True,
            )
    with database.session() as s:
        for home in s.scalars(select(Home)):
            run = retention.run_home(s, home, now=NOW)
            assert run.rolled_up_rows > 0 and run.calls_deleted == 1 and run.sealed_through
    after_rollup = check(database, homes)
    with database.session() as s:
        dialled = [
            rid
            for (rid,) in s.execute(
                select(Call.resident_id).where(
                    Call.direction == CallDirection.FROM_RESIDENT.value,
                    Call.created_at >= NOW - timedelta(days=DETAIL_DAYS),
                )
            )
        ]
        assert dialled and all(
            s.get(Resident, rid).last_call_day == NOW.date() - timedelta(days=1)  # type: ignore[union-attr]
            for rid in dialled
        )

    # Retention: a tablet back after months brings a call on a sealed day; the job adds it to
    # that day's figures, and the resident's last call day moves to it if it is later.
    with database.session() as s:
        # A resident with no call on record, on the list.
        silent_one = next(a for a in after_rollup if a.last_call is None)
        home = s.get(Home, silent_one.home_id)
        never = s.get(Resident, silent_one.resident_id)
        assert home is not None and never is not None
        sealed_day = local_today(home) - timedelta(days=95)
        approval = s.scalar(select(Approval).where(Approval.resident_id == never.id))
        assert approval is not None
        at = datetime.combine(sealed_day, datetime.min.time(), ZoneInfo(home.timezone))
        add_call(
            s,
            never,
            f"{approval.contact_id}:{approval.id}",
            at.replace(hour=15),
            direction="to_resident",
            answered=True,
        )
        never_id = never.id
    with database.session() as s:
        for home in s.scalars(select(Home)):
            run = retention.run_home(s, home, now=NOW)
            if home.id == silent_one.home_id:
                assert run.late_days == [sealed_day.isoformat()]
    after_retention = check(database, homes)
    with database.session() as s:
        assert s.get(Resident, never_id).last_call_day == sealed_day  # type: ignore[union-attr]
    # Still silent for more than N days, now since that day.
    silent = {a.resident_id: a for a in after_retention}
    assert silent[never_id].last_call == sealed_day
    assert {a.resident_id: a.last_call for a in after_rollup}[never_id] is None

    # Erasure of the resident with the latest call of the first home: their row is gone, the
    # others' days are untouched.
    with database.session() as s:
        latest = s.scalar(
            select(Resident)
            .where(Resident.home_id == homes[0], Resident.last_call_day.is_not(None))
            .order_by(Resident.last_call_day.desc(), Resident.id)
            .limit(1)
        )
        assert latest is not None
        erased_id = latest.id
        before = dict(s.execute(select(Resident.id, Resident.last_call_day)).all())
        settings = Settings(
            data_dir=tmp_path / "server",
            secret_key="test-secret-key-0123456789abcdef",
            database_url=database.url,
        )
        subject.erase_resident(session=s, settings=settings, resident_id=erased_id, by="test")
    check(database, homes)
    with database.session() as s:
        after = dict(s.execute(select(Resident.id, Resident.last_call_day)).all())
    assert after == {rid: day for rid, day in before.items() if rid != erased_id}

    # The migration's backfill computes the same column from usage_daily alone.
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    database.engine.dispose()
    command.downgrade(cfg, "0009")
    command.upgrade(cfg, "head")
    assert check(database, homes) == check(database, homes)
    with database.session() as s:
        assert dict(s.execute(select(Resident.id, Resident.last_call_day)).all()) == after
