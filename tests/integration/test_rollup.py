"""The daily roll-up (``backend.services.rollup``) against hand-computed figures.

Europe/Paris switches to summer time on Sunday 2026-03-29 at 02:00 (01:00 UTC): that local day
runs from 2026-03-28T23:00Z to 2026-03-29T22:00Z (23 hours). SQLite, and a real PostgreSQL for
two replicas rolling up at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backend.db import Database
from backend.models import Approval, Call, Contact, Home, Resident, Tablet, TabletEvent, UsageDaily
from backend.services import rollup
from tests.integration.test_postgres import postgres_url  # noqa: F401

MAR28, MAR29, MAR30 = date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'liens.db'}")
    database.migrate()
    yield database
    database.engine.dispose()


class Seeded:
    """A home in Paris with Marcel and Odette, a tablet, and a home elsewhere (Lyon)."""

    def __init__(self, database: Database) -> None:
        self.db = database
        with database.session() as s:
            home = Home(name="Les Tilleuls", timezone="Europe/Paris")
            other = Home(name="Ailleurs", timezone="Europe/Paris")
            s.add_all([home, other])
            s.flush()
            marcel = Resident(home_id=home.id, first_name="Marcel")
            odette = Resident(home_id=home.id, first_name="Odette")
            stranger = Resident(home_id=other.id, first_name="Paul")
            julie = Contact(home_id=home.id, display_name="Julie")
            s.add_all([marcel, odette, stranger, julie])
            s.flush()
            self.approval = {}
            for resident in (marcel, odette):
                approval = Approval(resident_id=resident.id, contact_id=julie.id)
                s.add(approval)
                s.flush()
                self.approval[resident.id] = approval.id
            tablet = Tablet(home_id=home.id, name="Salon")
            s.add(tablet)
            s.flush()
            self.home_id, self.other_id = home.id, other.id
            self.marcel, self.odette, self.stranger = marcel.id, odette.id, stranger.id
            self.julie, self.tablet = julie.id, tablet.id
        self.n = 0

    def call(
        self,
        resident: str,
        direction: str,
        created: str,
        answered: bool = True,
        duration: int | None = None,
    ) -> str:
        self.n += 1
        start = utc(created)
        with self.db.session() as s:
            s.add(
                Call(
                    id=f"call{self.n}",
                    direction=direction,
                    resident_id=resident,
                    contact_id=self.julie,
                    approval_id=self.approval[resident],
                    created_at=start,
                    answer_at=start + timedelta(seconds=10) if answered else None,
                    end_at=start + timedelta(seconds=10 + (duration or 30)),
                    duration_s=duration if answered else None,
                    outcome="completed" if answered else "missed",
                )
            )
        return f"call{self.n}"

    def event(self, event: str, ts: str, **data: Any) -> str:
        self.n += 1
        with self.db.session() as s:
            s.add(
                TabletEvent(
                    id=f"ev{self.n}",
                    tablet_id=self.tablet,
                    type=event,
                    ts=ts,
                    data={"event": event, **data},
                )
            )
        return f"ev{self.n}"

    def home(self, session: Any) -> Home:
        home = session.get(Home, self.home_id)
        assert home is not None
        return home


def seed_dst_weekend(seeded: Seeded) -> None:
    m, o = seeded.marcel, seeded.odette
    # Made on the 28th at 23:50 local, connected for 30 minutes into the 29th: all on the 28th.
    seeded.call(m, "from_resident", "2026-03-28T22:50:00Z", duration=1800)
    # 00:05 local on the 29th (still the 28th in UTC): received, 60 s.
    seeded.call(m, "to_resident", "2026-03-28T23:05:00Z", duration=60)
    # 23:30 summer time on the 29th: missed on the 29th.
    seeded.call(m, "to_resident", "2026-03-29T21:30:00Z", answered=False)
    # 00:30 summer time on the 30th (it would still be the 29th at winter time): missed, 30th.
    seeded.call(m, "to_resident", "2026-03-29T22:30:00Z", answered=False)
    seeded.call(o, "to_resident", "2026-03-29T10:00:00Z", duration=120)
    # 01:30 winter time on the 29th, half an hour before the change.
    seeded.event("activity_started", "2026-03-29T00:30:00.000Z", resident_id=m, activity="photos")
    seeded.event("activity_started", "2026-03-29T12:00:00.000Z", resident_id=m, activity="photos")
    seeded.event("activity_stopped", "2026-03-29T12:05:00.000Z", resident_id=m, duration_s=300)
    seeded.event("activity_started", "2026-03-29T12:10:00.000Z", resident_id=m, activity="memory")
    seeded.event("activity_stopped", "2026-03-29T12:12:00.000Z", resident_id=m, duration_s=120)
    # Written with an offset: 22:10 UTC on the 29th, 00:10 on the 30th in Paris.
    seeded.event("activity_started", "2026-03-30T00:10:00+02:00", resident_id=m, activity="quiz")
    # No figure: a heartbeat, a resident of another home, nonsense durations and keys.
    seeded.event("heartbeat", "2026-03-29T12:00:00.000Z", battery=80)
    seeded.event(
        "activity_started", "2026-03-29T12:00:00.000Z", resident_id=seeded.stranger, activity="x"
    )
    seeded.event("activity_stopped", "2026-03-29T13:00:00.000Z", resident_id=m, duration_s="ten")
    seeded.event("activity_started", "2026-03-29T13:00:00.000Z", resident_id=m, activity="")


def expected(seeded: Seeded) -> dict[tuple[str, date], rollup.Figures]:
    m, o = seeded.marcel, seeded.odette
    return {
        (m, MAR28): rollup.Figures(calls_made=1, call_seconds=1800),
        (m, MAR29): rollup.Figures(
            calls_received=1,
            calls_missed=1,
            call_seconds=60,
            activities={"photos": 2, "memory": 1},
            activity_seconds=420,
        ),
        (m, MAR30): rollup.Figures(calls_missed=1, activities={"quiz": 1}),
        (o, MAR29): rollup.Figures(calls_received=1, call_seconds=120),
    }


def stored(database: Database, home_id: str) -> dict[tuple[str, date], rollup.Figures]:
    with database.session() as s:
        rows = s.scalars(select(UsageDaily).where(UsageDaily.home_id == home_id)).all()
        return {(r.resident_id, r.day): rollup.Figures.of_row(r) for r in rows}


def test_day_figures_across_midnight_and_dst_change(db: Database) -> None:
    seeded = Seeded(db)
    seed_dst_weekend(seeded)
    with db.session() as s:
        figures = rollup.day_figures(s, seeded.home(s), MAR28, MAR30)
        assert figures == expected(seeded)
        # One day alone: the call placed the evening before is not in it.
        only_29 = rollup.day_figures(s, seeded.home(s), MAR29, MAR29)
        assert set(only_29) == {(seeded.marcel, MAR29), (seeded.odette, MAR29)}


def test_roll_up_writes_usage_daily_and_is_idempotent(db: Database) -> None:
    seeded = Seeded(db)
    seed_dst_weekend(seeded)
    with db.session() as s:
        result = rollup.roll_up(s, seeded.home(s), MAR30)
    assert result.rows == 4 and result.first_day is not None and result.first_day <= MAR28
    assert stored(db, seeded.home_id) == expected(seeded)
    with db.session() as s:
        again = rollup.roll_up(s, seeded.home(s), MAR30)
    assert again.rows == 4
    assert stored(db, seeded.home_id) == expected(seeded)
    with db.session() as s:
        assert len(s.scalars(select(UsageDaily)).all()) == 4
    # A late event for the 29th: the next roll-up replaces that day's figures, nothing doubles.
    seeded.event("activity_started", "2026-03-29T15:00:00.000Z", resident_id=seeded.odette,
                 activity="photos")  # fmt: skip
    with db.session() as s:
        rollup.roll_up(s, seeded.home(s), MAR30, since_day=MAR29)
    want = expected(seeded)
    want[(seeded.odette, MAR29)].activities = {"photos": 1}
    assert stored(db, seeded.home_id) == want
    # until_day bounds the roll-up: the other home has nothing.
    assert stored(db, seeded.other_id) == {}


def test_roll_up_never_rewrites_a_sealed_day(db: Database) -> None:
    seeded = Seeded(db)
    seed_dst_weekend(seeded)
    with db.session() as s:
        rollup.roll_up(s, seeded.home(s), MAR30)
        from backend.services import audit

        audit.record(
            session=s,
            actor="system:retention",
            action=rollup.SEALED_ACTION,
            target_type="home",
            target_id=seeded.home_id,
            home_id=seeded.home_id,
            details={"through_day": MAR29.isoformat()},
        )
        # The detail of the 28th and 29th is gone (as the retention job would have deleted it).
        for row in s.scalars(select(Call)).all():
            if rollup.local_day(row.created_at, rollup.ZoneInfo("Europe/Paris")) <= MAR29:
                s.delete(row)
    with db.session() as s:
        assert rollup.sealed_through(s, seeded.home_id) == MAR29
        result = rollup.roll_up(s, seeded.home(s), MAR30, since_day=MAR28)
    assert result.first_day == MAR30
    assert stored(db, seeded.home_id) == expected(seeded)


def _concurrent_roll_ups(database_url: str, home_id: str, until: date) -> list[int]:
    """Two 'replicas' (own engine each) rolling up the same home at the same moment."""
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def replica() -> None:
        database = Database(database_url)
        try:
            with database.session() as s:
                home = s.get(Home, home_id)
                assert home is not None
                barrier.wait(timeout=30)
                results.append(rollup.roll_up(s, home, until).rows)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)
        finally:
            database.engine.dispose()

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_two_replicas_rolling_up_at_once_on_sqlite(db: Database) -> None:
    seeded = Seeded(db)
    seed_dst_weekend(seeded)
    assert _concurrent_roll_ups(db.url, seeded.home_id, MAR30) == [4, 4]
    assert stored(db, seeded.home_id) == expected(seeded)


def test_two_replicas_rolling_up_at_once_on_postgres(postgres_url: str) -> None:  # noqa: F811
    database = Database(postgres_url)
    try:
        database.migrate()
        seeded = Seeded(database)
        seed_dst_weekend(seeded)
        # Many residents and days, so the two transactions really overlap.
        with database.session() as s:
            for i in range(40):
                s.add(Resident(id=f"r{i:03d}", home_id=seeded.home_id, first_name=f"R{i}"))
            s.flush()
            for i in range(40):
                for d in range(30):
                    data = {"event": "activity_started", "resident_id": f"r{i:03d}",
                            "activity": "photos"}  # fmt: skip
                    s.add(
                        TabletEvent(
                            id=f"bulk{i}-{d}",
                            tablet_id=seeded.tablet,
                            type="activity_started",
                            ts=f"2026-02-{1 + d % 28:02d}T10:{d:02d}:00.000Z",
                            data=data,
                        )
                    )
        for _ in range(3):
            results = _concurrent_roll_ups(database.url, seeded.home_id, MAR30)
            assert results == [results[0]] * 2 and results[0] == 4 + 40 * 28
        rows = stored(database, seeded.home_id)
        assert len(rows) == 4 + 40 * 28
        assert {k: v for k, v in rows.items() if k[0] in (seeded.marcel, seeded.odette)} == (
            expected(seeded)
        )
        # Day 1 and 2 of February got two events each (d and d + 28), the other days one.
        assert rows[("r000", date(2026, 2, 1))].activities == {"photos": 2}
        assert rows[("r000", date(2026, 2, 3))].activities == {"photos": 1}
    finally:
        database.engine.dispose()
