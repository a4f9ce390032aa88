"""Retention (``backend.services.retention``): old detail folded into ``usage_daily``, then gone.

"Now" is fixed at 2026-06-10 12:00 UTC; the home keeps 90 days, so the first day kept is
2026-03-12 and the detail of 100 days ago (2026-03-02) must go, after being folded.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from backend.db import Database
from backend.models import AuditEntry, Call, Home, TabletEvent, UsageDaily
from backend.services import retention, rollup
from liens.cli import main
from tests.integration.test_postgres import postgres_url  # noqa: F401
from tests.integration.test_rollup import Seeded, db, stored  # noqa: F401

NOW = datetime.fromisoformat("2026-06-10T12:00:00+00:00")
OLD = date(2026, 3, 2)  # 100 days before NOW


def seed_old_and_recent(seeded: Seeded) -> None:
    m, o = seeded.marcel, seeded.odette
    seeded.call(m, "from_resident", "2026-03-02T09:00:00Z", duration=300)
    seeded.call(m, "to_resident", "2026-03-02T17:00:00Z", answered=False)
    seeded.call(o, "to_resident", "2026-03-02T18:00:00Z", duration=45)
    seeded.event("activity_started", "2026-03-02T10:00:00.000Z", resident_id=m, activity="photos")
    seeded.event("activity_stopped", "2026-03-02T10:04:00.000Z", resident_id=m, duration_s=240)
    seeded.event("heartbeat", "2026-03-02T10:00:00.000Z", battery=50)
    # Recent: 5 days ago, must stay.
    seeded.call(m, "from_resident", "2026-06-05T09:00:00Z", duration=60)
    seeded.event("activity_started", "2026-06-05T10:00:00.000Z", resident_id=m, activity="memory")


def counts(database: Database) -> tuple[int, int]:
    with database.session() as s:
        calls = int(s.scalar(select(func.count()).select_from(Call)) or 0)
        events = int(s.scalar(select(func.count()).select_from(TabletEvent)) or 0)
    return calls, events


def run(database: Database, home_id: str) -> retention.HomeRun:
    with database.session() as s:
        home = s.get(Home, home_id)
        assert home is not None
        return retention.run_home(s, home, now=NOW)


def test_old_detail_is_folded_then_deleted_and_a_rerun_does_nothing(db: Database) -> None:  # noqa: F811
    seeded = Seeded(db)
    seed_old_and_recent(seeded)
    with db.session() as s:
        home = seeded.home(s)
        detail_said = rollup.day_figures(s, home, OLD, OLD)
    assert detail_said == {
        (seeded.marcel, OLD): rollup.Figures(
            calls_made=1,
            calls_missed=1,
            call_seconds=300,
            activities={"photos": 1},
            activity_seconds=240,
        ),
        (seeded.odette, OLD): rollup.Figures(calls_received=1, call_seconds=45),
    }
    assert counts(db) == (4, 4)

    first = run(db, seeded.home_id)
    assert first.keep_from == "2026-03-12"
    assert (first.calls_deleted, first.events_deleted) == (3, 3)
    assert first.folded_days == [OLD.isoformat()] and first.late_days == []
    assert first.sealed_through == "2026-03-11"
    # The aggregates say what the detail said; the recent detail is untouched.
    rows = stored(db, seeded.home_id)
    assert {k: v for k, v in rows.items() if k[1] == OLD} == detail_said
    assert counts(db) == (1, 1)
    with db.session() as s:
        recent = rollup.day_figures(s, seeded.home(s), date(2026, 6, 5), date(2026, 6, 5))
    assert recent == {
        (seeded.marcel, date(2026, 6, 5)): rollup.Figures(
            calls_made=1, call_seconds=60, activities={"memory": 1}
        )
    }
    # The recent complete days were rolled up too (today is not: the charts count it live).
    assert rows[(seeded.marcel, date(2026, 6, 5))] == recent[(seeded.marcel, date(2026, 6, 5))]

    again = run(db, seeded.home_id)
    assert (again.calls_deleted, again.events_deleted, again.folded_days) == (0, 0, [])
    assert stored(db, seeded.home_id) == rows
    assert counts(db) == (1, 1)
    with db.session() as s:
        entries = s.scalars(
            select(AuditEntry).where(AuditEntry.action == rollup.SEALED_ACTION)
        ).all()
        assert len(entries) == 1  # a run with nothing to do writes nothing
        assert entries[0].details["calls_deleted"] == 3
        assert entries[0].actor == retention.ACTOR


def test_a_late_event_for_a_sealed_day_is_added_not_overwritten(db: Database) -> None:  # noqa: F811
    seeded = Seeded(db)
    seed_old_and_recent(seeded)
    run(db, seeded.home_id)
    # A tablet back after months offline delivers an event of that day.
    seeded.event(
        "activity_started", "2026-03-02T15:00:00.000Z", resident_id=seeded.marcel, activity="quiz"
    )
    with db.session() as s:
        # The roll-up alone leaves the sealed day alone.
        rollup.roll_up(s, seeded.home(s), date(2026, 6, 9), since_day=OLD)
    assert stored(db, seeded.home_id)[(seeded.marcel, OLD)].activities == {"photos": 1}
    late = run(db, seeded.home_id)
    assert late.late_days == [OLD.isoformat()] and late.events_deleted == 1
    figures = stored(db, seeded.home_id)[(seeded.marcel, OLD)]
    assert figures.activities == {"photos": 1, "quiz": 1}
    assert figures.calls_made == 1 and figures.call_seconds == 300


def test_a_failure_midway_leaves_the_detail_and_the_aggregates_as_they_were(
    db: Database,  # noqa: F811
) -> None:
    seeded = Seeded(db)
    seed_old_and_recent(seeded)
    before_rows = stored(db, seeded.home_id)

    # The database refuses the last step (deleting the events) as a full disk would.
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE DELETE ON tablet_events "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    with pytest.raises(IntegrityError, match="disk full"):
        run(db, seeded.home_id)
    # The periodic run logs it, reports it, and goes on with the other homes.
    reported = retention.report(retention.run(db, now=NOW))
    assert reported["errors"] == 1 and reported["calls_deleted"] == 0
    failed = [h for h in reported["homes"] if h["error"]]
    assert failed[0]["home_id"] == seeded.home_id and "disk full" in failed[0]["error"]
    assert counts(db) == (4, 4)
    assert stored(db, seeded.home_id) == before_rows
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    assert run(db, seeded.home_id).calls_deleted == 3


def test_shorter_retention_set_by_an_admin_and_the_cli_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    """``liens admin home set-retention`` and ``liens admin retention run``, in process."""
    from backend.settings import get_settings

    # The CLI reads its settings once per process: read them again here, and after the test.
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("LIENS_DATA_DIR", str(data_dir))
    monkeypatch.delenv("LIENS_DATABASE_URL", raising=False)

    def liens(*args: str) -> Any:
        code = main(["admin", "--by", "cli:test", *args])
        out = capsys.readouterr().out
        assert code in (0, 1), out
        return json.loads(out)

    database = Database(f"sqlite:///{data_dir / 'liens.db'}")
    try:
        database.migrate()
        seeded = Seeded(database)
        home = seeded.home_id
        refused = liens("home", "set-retention", "--home", home, "--days", "2")
        assert refused == {"error": "The retention must be between 7 and 3650 days (given: 2)."}
        assert liens("home", "set-retention", "--home", "nowhere", "--days", "30") == {
            "error": "Home nowhere not found"
        }
        changed = liens("home", "set-retention", "--home", home, "--days", "30")
        applied = changed.pop("applied")  # the apply step: nothing for a tablet to know here
        assert changed == {
            "id": home,
            "name": "Les Tilleuls",
            "retention_days": 30,
            "published_to": [],
        }
        assert applied["republish"] == [] and applied["problems"] == []
        seeded.call(seeded.marcel, "from_resident", "2020-01-01T10:00:00Z", duration=10)
        seeded.event("heartbeat", "2020-01-01T10:00:00.000Z", battery=10)
        recent = datetime.now().date().isoformat()
        seeded.event("heartbeat", f"{recent}T00:00:00.000Z", battery=10)
        report = liens("retention", "run")
        assert report["calls_deleted"] == 1 and report["events_deleted"] == 1
        mine = [h for h in report["homes"] if h["home_id"] == home]
        assert mine[0]["retention_days"] == 30 and mine[0]["folded_days"] == ["2020-01-01"]
        assert counts(database) == (0, 1)
        with database.session() as s:
            row = s.scalar(select(UsageDaily).where(UsageDaily.day == date(2020, 1, 1)))
            assert row is not None and row.calls_made == 1 and row.call_seconds == 10
            entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "home.retention_set"))
            assert entry is not None and entry.details == {"from": 90, "to": 30}
            assert entry.actor == "cli:test"
        rerun = liens("retention", "run")
        assert (rerun["calls_deleted"], rerun["events_deleted"]) == (0, 0)
        assert all(h["folded_days"] == [] for h in rerun["homes"])
    finally:
        database.engine.dispose()


def test_the_job_runs_inside_the_backend(db: Database) -> None:  # noqa: F811
    seeded = Seeded(db)
    seeded.call(seeded.marcel, "from_resident", "2020-01-01T10:00:00Z", duration=10)
    job = retention.RetentionJob(db, interval=0.2, first_delay=0.0)
    job.start()
    try:
        deadline = time.monotonic() + 60
        while counts(db)[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counts(db)[0] == 0
        while job.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job.runs >= 2
    finally:
        job.stop()
    assert stored(db, seeded.home_id)[(seeded.marcel, date(2020, 1, 1))].call_seconds == 10


def test_days_missed_while_the_backend_was_down_are_rolled_up(db: Database) -> None:  # noqa: F811
    seeded = Seeded(db)
    m = seeded.marcel
    # Rolled up until 2026-06-01, then the backend stopped until 2026-06-10.
    seeded.call(m, "from_resident", "2026-06-01T09:00:00Z", duration=10)
    with db.session() as s:
        rollup.roll_up(s, seeded.home(s), date(2026, 6, 1))
    seeded.call(m, "from_resident", "2026-06-03T09:00:00Z", duration=20)
    seeded.call(m, "to_resident", "2026-06-06T09:00:00Z", duration=30)
    seeded.call(m, "to_resident", "2026-06-10T09:00:00Z", duration=40)  # today: live only
    result = run(db, seeded.home_id)
    assert result.rolled_up_rows == 3
    rows = stored(db, seeded.home_id)
    assert sorted(day for _, day in rows) == [date(2026, 6, 1), date(2026, 6, 3), date(2026, 6, 6)]
    assert rows[(m, date(2026, 6, 6))] == rollup.Figures(calls_received=1, call_seconds=30)


def test_a_replica_skips_a_home_another_one_holds_on_postgres(postgres_url: str) -> None:  # noqa: F811
    database = Database(postgres_url)
    try:
        database.migrate()
        seeded = Seeded(database)
        seed_old_and_recent(seeded)
        other = database.sessionmaker()
        try:
            # Another replica is in the middle of this home's run.
            rollup.lock_home(other, seeded.home_id)
            busy = {r.home_id: r for r in retention.run(database, now=NOW)}
            assert busy[seeded.home_id].skipped and busy[seeded.home_id].calls_deleted == 0
            assert not busy[seeded.other_id].skipped
        finally:
            other.rollback()
            other.close()
        done = {r.home_id: r for r in retention.run(database, now=NOW)}
        assert not done[seeded.home_id].skipped and done[seeded.home_id].calls_deleted == 3
        assert counts(database) == (1, 1)
    finally:
        database.engine.dispose()
