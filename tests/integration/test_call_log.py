"""The call log converges from whichever side saw the end (backend/calls/calllog.py).

In-process, on a real SQLite database built by the migrations, through the service layer: the
hub's own writes (``checks.log_created`` / ``log_answered`` / ``log_ended``), the tablet's
``call_ended`` event through the ingest handler, and the start-up sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backend.calls import calllog, checks
from backend.calls.calllog import CALL_EVENTS, close_calls_left_open, on_call_event
from backend.db import Database
from backend.models import BackendReplica, Call, CallRoute, TabletEvent, new_id, utcnow
from backend.services import directory, tablets
from kiosk.calls.model import CallDirection, EndedBy, EndReason


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'liens.db'}")
    database.migrate()
    yield database
    database.engine.dispose()


@pytest.fixture
def pair(db: Database) -> dict[str, str]:
    """A home with Marcel, Julie approved for him, his tablet, and another home's tablet."""
    with db.session() as s:
        home = directory.add_home(session=s, name="Les Tilleuls", by="test")
        marcel = directory.add_resident(session=s, home_id=home.id, first_name="Marcel", by="t")
        julie = directory.add_contact(session=s, home_id=home.id, display_name="Julie", by="t")
        approval = directory.approve(session=s, resident_id=marcel.id, contact_id=julie.id, by="t")
        tablet = tablets.add_tablet(session=s, home_id=home.id, name="Salon", by="t")
        other_home = directory.add_home(session=s, name="Bellevue", by="test")
        other = tablets.add_tablet(session=s, home_id=other_home.id, name="Hall", by="t")
        s.flush()
        return {
            "resident": marcel.id,
            "contact": julie.id,
            "approval": approval.id,
            "tablet": tablet.id,
            "other_tablet": other.id,
        }


def open_call(
    db: Database, pair: dict[str, str], *, answered: bool, tablet: bool = True
) -> tuple[str, datetime]:
    """A call the hub logged as it does (created, rung, answered), left open; its answer time."""
    call_id = new_id()
    check = checks.PairCheck(
        True,
        "ok",
        approval_id=pair["approval"],
        resident_id=pair["resident"],
        contact_id=pair["contact"],
    )
    with db.session() as s:
        checks.log_created(
            s,
            call_id=call_id,
            direction=CallDirection.FROM_RESIDENT,
            check=check,
            tablet_id=pair["tablet"] if tablet else None,
        )
    with db.session() as s:
        checks.log_ringing(s, call_id)
        if answered:
            checks.log_answered(s, call_id, pair["tablet"])
    with db.session() as s:
        # A call of a few minutes ago, so that the tablet's ends below are in the past.
        row = s.get(Call, call_id)
        assert row is not None
        back = timedelta(minutes=5)
        row.created_at -= back
        row.ring_at = row.ring_at - back if row.ring_at else None
        row.answer_at = row.answer_at - back if row.answer_at else None
        return call_id, row.answer_at or row.created_at


def call_ended(
    db: Database,
    tablet_id: str,
    data: dict[str, Any],
    *,
    ts: datetime | str | None = None,
    event_id: str | None = None,
) -> None:
    """What the ingest does with one ``call_ended``: store the event, call the handler, commit."""
    event_id = event_id or new_id()
    when = ts if isinstance(ts, str) else (ts or utcnow()).isoformat()
    payload = {**data, "event": "call_ended"}
    with db.session() as s:
        if s.get(TabletEvent, event_id) is None:
            s.add(
                TabletEvent(
                    id=event_id, tablet_id=tablet_id, type="call_ended", ts=when, data=payload
                )
            )
        s.flush()
        on_call_event(
            s, tablet_id=tablet_id, event_id=event_id, event="call_ended", ts=when, data=payload
        )


def row_of(db: Database, call_id: str) -> dict[str, Any]:
    with db.session() as s:
        row = s.get(Call, call_id)
        assert row is not None
        return {
            "end_at": row.end_at,
            "answer_at": row.answer_at,
            "duration_s": row.duration_s,
            "outcome": row.outcome,
            "ended_by": row.ended_by,
        }


def ended(call_id: str, reason: str, duration_s: int) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "approval_id": "a",
        "resident_id": "r",
        "direction": "outgoing",
        "duration_s": duration_s,
        "reason": reason,
    }


def test_the_handler_handles_the_tablets_call_ended_event() -> None:
    assert frozenset({"call_ended"}) == CALL_EVENTS


def test_an_open_row_is_closed_with_the_tablets_reason_and_duration(
    db: Database, pair: dict[str, str]
) -> None:
    call_id, answered_at = open_call(db, pair, answered=True)
    at = answered_at + timedelta(seconds=6)
    call_ended(db, pair["tablet"], ended(call_id, "network", 5), ts=at)
    row = row_of(db, call_id)
    assert row["outcome"] == "network"
    assert row["duration_s"] == 5
    assert row["end_at"] == at
    assert row["answer_at"] == answered_at  # the hub's answer time is kept
    assert row["ended_by"] is None  # the tablet's event does not say which side


def test_a_redelivered_event_changes_nothing(db: Database, pair: dict[str, str]) -> None:
    call_id, answered_at = open_call(db, pair, answered=True)
    data = ended(call_id, "hung_up", 42)
    call_ended(db, pair["tablet"], data, ts=answered_at + timedelta(seconds=43), event_id="e1")
    first = row_of(db, call_id)
    assert first["outcome"] == "completed" and first["duration_s"] == 42
    # Redelivered (same id), and resent as a new event later: the same row.
    call_ended(db, pair["tablet"], data, ts=answered_at + timedelta(seconds=43), event_id="e1")
    call_ended(db, pair["tablet"], data, ts=answered_at + timedelta(seconds=99))
    assert row_of(db, call_id) == first


def test_a_row_the_hub_closed_keeps_the_hubs_account(db: Database, pair: dict[str, str]) -> None:
    call_id, answered_at = open_call(db, pair, answered=True)
    with db.session() as s:
        checks.log_ended(s, call_id, EndReason.HUNG_UP, EndedBy.CONTACT)
    hubs = row_of(db, call_id)
    assert hubs["outcome"] == "completed" and hubs["ended_by"] == "contact"
    call_ended(db, pair["tablet"], ended(call_id, "network", 5))
    assert row_of(db, call_id) == hubs


def test_when_the_tablet_tells_first_the_hub_adds_who_ended_it(
    db: Database, pair: dict[str, str]
) -> None:
    call_id, answered_at = open_call(db, pair, answered=True)
    call_ended(db, pair["tablet"], ended(call_id, "hung_up", 30))
    tablets_account = row_of(db, call_id)
    with db.session() as s:
        checks.log_ended(s, call_id, EndReason.HUNG_UP, EndedBy.RESIDENT)
    row = row_of(db, call_id)
    assert row == {**tablets_account, "ended_by": "resident"}


def test_an_unanswered_row_takes_the_answer_from_the_tablets_duration(
    db: Database, pair: dict[str, str]
) -> None:
    # The hub died before it logged the answer; the tablet had 20 s of media.
    call_id, created = open_call(db, pair, answered=False)
    at = created + timedelta(seconds=60)
    call_ended(db, pair["tablet"], ended(call_id, "hung_up", 20), ts=at)
    row = row_of(db, call_id)
    assert row["outcome"] == "completed"
    assert row["duration_s"] == 20
    assert row["answer_at"] == at - timedelta(seconds=20)


def test_a_missed_call_stays_a_missed_call(db: Database, pair: dict[str, str]) -> None:
    call_id, _ = open_call(db, pair, answered=False, tablet=False)
    call_ended(db, pair["tablet"], ended(call_id, "missed", 0))
    row = row_of(db, call_id)
    assert (row["outcome"], row["duration_s"], row["answer_at"]) == ("missed", None, None)


@pytest.mark.parametrize(
    ("data", "ts", "says"),
    [
        ({"reason": "network", "duration_s": 5}, None, "'call_id' must be"),
        ({"call_id": "", "reason": "network", "duration_s": 5}, None, "'call_id' must be"),
        ({"call_id": "CALL", "reason": "bored", "duration_s": 5}, None, "'reason' must be"),
        ({"call_id": "CALL", "reason": "network", "duration_s": -1}, None, "'duration_s' must"),
        ({"call_id": "CALL", "reason": "network", "duration_s": True}, None, "'duration_s' must"),
        ({"call_id": "CALL", "reason": "network", "duration_s": "5"}, None, "'duration_s' must"),
        ({"call_id": "CALL", "reason": "network", "duration_s": 5}, "yesterday", "not ISO 8601"),
        ({"call_id": "CALL", "reason": "network", "duration_s": 5}, "2026-01-01T10:00", "no time"),
    ],
)
def test_bad_events_are_logged_and_never_raise(
    db: Database,
    pair: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    data: dict[str, Any],
    ts: str | None,
    says: str,
) -> None:
    call_id, _ = open_call(db, pair, answered=True)
    data = {k: (call_id if v == "CALL" else v) for k, v in data.items()}
    with caplog.at_level(logging.WARNING, logger=calllog.__name__):
        call_ended(db, pair["tablet"], data, ts=ts)
    assert says in caplog.text
    assert row_of(db, call_id)["end_at"] is None


def test_a_tablet_that_is_no_party_cannot_close_the_row(
    db: Database, pair: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    taken, _ = open_call(db, pair, answered=True)
    ringing, _ = open_call(db, pair, answered=False, tablet=False)
    with caplog.at_level(logging.WARNING, logger=calllog.__name__):
        call_ended(db, pair["other_tablet"], ended(taken, "network", 5))
        call_ended(db, pair["other_tablet"], ended(ringing, "declined", 0))
    assert row_of(db, taken)["end_at"] is None
    assert row_of(db, ringing)["end_at"] is None
    assert "no party" in caplog.text and "another tablet" in caplog.text


def test_an_unknown_call_or_another_event_is_ignored(db: Database, pair: dict[str, str]) -> None:
    call_ended(db, pair["tablet"], ended("not-a-call", "network", 5))
    with db.session() as s:
        on_call_event(s, tablet_id=pair["tablet"], event_id="h", event="heartbeat", ts="x", data={})


# -- at start: rows a killed backend left open ------------------------------------------------


def test_at_start_open_rows_are_closed_from_the_tablets_stored_event_or_as_server_restart(
    db: Database, pair: dict[str, str]
) -> None:
    told, told_answer = open_call(db, pair, answered=True)
    silent, silent_answer = open_call(db, pair, answered=True)
    rung, _ = open_call(db, pair, answered=False)
    # The tablet's event for "told" was stored while the call log could not apply it (the
    # backend's ingest ran before the row existed, or before the handler was wired).
    at = told_answer + timedelta(seconds=8)
    with db.session() as s:
        s.add(
            TabletEvent(
                id=new_id(),
                tablet_id=pair["tablet"],
                type="call_ended",
                ts=at.isoformat(),
                data={**ended(told, "network", 7), "event": "call_ended"},
            )
        )
    with db.session() as s:
        assert close_calls_left_open(s) == 3
    row = row_of(db, told)
    assert (row["outcome"], row["duration_s"], row["end_at"]) == ("network", 7, at)
    row = row_of(db, silent)
    assert row["outcome"] == "server_restart"
    assert row["end_at"] == silent_answer  # the last moment known
    assert (row["duration_s"], row["ended_by"]) == (0, "backend")
    row = row_of(db, rung)
    assert (row["outcome"], row["duration_s"]) == ("server_restart", None)
    with db.session() as s:
        assert close_calls_left_open(s) == 0
    # The silent tablet comes back and tells: its account replaces the guess.
    end = silent_answer + timedelta(seconds=12)
    call_ended(db, pair["tablet"], ended(silent, "network", 11), ts=end)
    row = row_of(db, silent)
    assert (row["outcome"], row["duration_s"], row["end_at"]) == ("network", 11, end)


def test_at_start_a_call_another_live_replica_holds_is_left_to_it(
    db: Database, pair: dict[str, str]
) -> None:
    held, _ = open_call(db, pair, answered=True)
    stale, _ = open_call(db, pair, answered=True)
    mine, _ = open_call(db, pair, answered=True)
    with db.session() as s:
        s.add(BackendReplica(id="alive", last_seen=utcnow()))
        s.add(BackendReplica(id="gone", last_seen=utcnow() - timedelta(minutes=5)))
        s.add(BackendReplica(id="me", last_seen=utcnow()))
        s.add(CallRoute(call_id=held, replica_id="alive"))
        s.add(CallRoute(call_id=stale, replica_id="gone"))
        s.add(CallRoute(call_id=mine, replica_id="me"))  # this replica's previous run
    with db.session() as s:
        assert close_calls_left_open(s, replica_id="me") == 2
    assert row_of(db, held)["end_at"] is None
    assert row_of(db, stale)["outcome"] == "server_restart"
    assert row_of(db, mine)["outcome"] == "server_restart"


def test_the_event_time_is_kept_within_the_calls_life(db: Database, pair: dict[str, str]) -> None:
    # A tablet whose clock is a year off: the end is neither before the call nor in the future.
    early, _ = open_call(db, pair, answered=True)
    late, _ = open_call(db, pair, answered=True)
    call_ended(db, pair["tablet"], ended(early, "hung_up", 3), ts=datetime(2000, 1, 1, tzinfo=UTC))
    call_ended(db, pair["tablet"], ended(late, "hung_up", 3), ts=utcnow() + timedelta(days=365))
    with db.session() as s:
        for call_id in (early, late):
            row = s.get(Call, call_id)
            assert row is not None and row.end_at is not None
            assert row.created_at <= row.end_at <= utcnow()
