"""The backend SIGKILLed during a call, then restarted: the call's row ends closed with the
tablet's reason and duration (backend/calls/calllog.py, docs/calls.md "The call log").

Real processes: Mosquitto 2, one ``liens serve`` (restarted with the same replica id), a
headless kiosk (``liens kiosk --headless``, aiortc, synthetic media, answers by itself) and a
relative (the family page's WebSocket and an aiortc peer, tests/ui/relative.py). While the call
is connected the backend is killed; the relative's page loses its WebSocket and closes its peer
connection, as the family page does; the tablet ends the call (``network``) and its
``call_ended`` waits in its outbox. The backend restarts: its start-up sweep finds the row open,
and the tablet's event closes it.

This needs the two hooks of the call log wired by the backend: ``on_call_event`` in the ingest's
table of event handlers (for ``CALL_EVENTS``) and ``close_calls_left_open`` once at start. Until
both are there (looked for in the sources), the test is skipped; ``LIENS_TEST_CALL_LOG_WIRED=1``
runs it anyway.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backend.db import Database
from backend.models import Call, TabletEvent
from tests.fixtures.mosquitto import free_port, running_mosquitto
from tests.helpers import HeadlessKiosk, contact_names, poll_until
from tests.replicas import issue_code, replica, seed

ROOT = Path(__file__).resolve().parents[2]
CALL_S = 3.0  # how long the call is connected before the backend is killed


def _wired() -> bool:
    if os.environ.get("LIENS_TEST_CALL_LOG_WIRED") == "1":
        return True
    ingest = (ROOT / "backend" / "mqtt" / "ingest.py").read_text()
    start = (ROOT / "backend" / "runtime.py").read_text()
    return "on_call_event" in ingest and "close_calls_left_open" in start


pytestmark = pytest.mark.skipif(
    not _wired(),
    reason="the call log's hooks are not wired yet: calllog.on_call_event in the ingest's "
    "handler table, calllog.close_calls_left_open at the backend's start",
)


def _call_event(event: dict[str, Any], call_id: str, state: str) -> bool:
    return event["event"] == "call" and event["state"] == state and event["call_id"] == call_id


def _row(url: str, call_id: str) -> dict[str, Any] | None:
    db = Database(url)
    try:
        with db.session() as s:
            row = s.get(Call, call_id)
            if row is None:
                return None
            return {
                "end_at": row.end_at,
                "answer_at": row.answer_at,
                "duration_s": row.duration_s,
                "outcome": row.outcome,
                "ended_by": row.ended_by,
            }
    finally:
        db.engine.dispose()


def _stored_call_ended(url: str, call_id: str) -> dict[str, Any] | None:
    db = Database(url)
    try:
        with db.session() as s:
            for event in s.scalars(select(TabletEvent).where(TabletEvent.type == "call_ended")):
                if event.data.get("call_id") == call_id:
                    return dict(event.data)
            return None
    finally:
        db.engine.dispose()


def test_a_call_under_way_when_the_backend_is_killed_is_closed_with_the_tablets_account(
    tmp_path: Path,
) -> None:
    from tests.ui.relative import Relative

    url = f"sqlite:///{tmp_path / 'liens.db'}"
    with ExitStack() as stack:
        broker = stack.enter_context(running_mosquitto(tmp_path / "mosquitto", port=free_port()))
        home = seed(url, 1)
        backend = replica(tmp_path, "a", url, broker)
        stack.callback(backend.stop)
        backend.start()
        kiosk = HeadlessKiosk(
            tmp_path / "kiosk",
            backend.base_url,
            code=issue_code(url, home.tablets[0]),
            extra=["--media", "synthetic", "--answer", "auto"],
        )
        stack.callback(kiosk.stop)
        kiosk.wait_for(lambda e: e["event"] == "config" and contact_names(e) == ["Julie"], 60)

        # Julie calls Marcel; the tablet answers by itself; media flows.
        relative = Relative(backend.base_url, home.token)
        stack.callback(relative.close)
        relative.send(type="call", resident_id=home.resident)
        call_id = str(relative.expect("calling", 15)["call_id"])
        relative.expect("accepted", 15)  # the tablet answers at once (it may even ring after)
        relative.send_offer(call_id)
        relative.take_answer(15)
        kiosk.wait_for(
            lambda e: (
                e["event"] == "call" and e["state"] == "connected" and e["call_id"] == call_id
            ),
            30,
        )
        time.sleep(CALL_S)

        backend.kill()
        row = _row(url, call_id)
        assert row is not None and row["end_at"] is None  # the hub died with the call open
        # The family page lost its WebSocket: it ends its side of the call (call.js "network").
        relative.close_peer()
        ended = kiosk.wait_for(lambda e: _call_event(e, call_id, "ended"), 45)
        assert ended["reason"] == "network"

        backend.start()
        tablets_account = poll_until(
            lambda: _stored_call_ended(url, call_id), 60, "the tablet's call_ended stored"
        )
        assert tablets_account["reason"] == "network"
        assert tablets_account["duration_s"] >= CALL_S - 1

        def closed_by_the_tablet() -> dict[str, Any] | None:
            now = _row(url, call_id)
            return now if now and now["outcome"] not in (None, "server_restart") else None

        row = poll_until(closed_by_the_tablet, 30, "the call's row closed from the tablet")
        assert row["outcome"] == "network"
        assert row["duration_s"] == tablets_account["duration_s"]
        assert row["end_at"] is not None and row["answer_at"] is not None
        assert row["end_at"] >= row["answer_at"]
