"""SIGKILL the backend, and the broker then the backend, while tablets stream events.

Real Mosquitto 2 (restarted on the same port with the same persistence folder), real PostgreSQL,
one ``liens serve`` process (restarted with the same replica id, so that it finds its MQTT 5
session again), and tablets that are the real ``kiosk.link.Link`` with their SQLite outboxes.

- Backend killed: nothing lost, nothing twice (the backend acknowledges after its commit; the
  broker keeps what was not acknowledged in the replica's session and sends it again).
- Broker killed, then backend: nothing lost, nothing twice. Mosquitto acknowledges before the
  event is on disk, and Mosquitto 2.0.11 does not restore *shared* subscriptions from its
  persistence file, so the broker alone loses events in that window; the tablet therefore keeps
  each event until the backend confirms it is stored (``events_stored`` on ``cmd``) and publishes
  it again when that confirmation is late (first seen here: 77 of 3,475 lost before the receipt).
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.db import Database
from tests.fixtures.mosquitto import free_port, running_mosquitto
from tests.replicas import (
    Tablet,
    count_events,
    enrol,
    fresh_postgres,
    issue_code,
    postgres_available,
    replica,
    seed,
)

TABLETS = 10
RATE_PER_TABLET = 20  # events per second, per tablet


def test_backend_killed_mid_stream_nothing_lost_nothing_twice(tmp_path: Path) -> None:
    _stream_and_kill(tmp_path, kill_broker=False)


def test_broker_then_backend_killed_mid_stream(tmp_path: Path) -> None:
    _stream_and_kill(tmp_path, kill_broker=True)


def _stream_and_kill(tmp_path: Path, *, kill_broker: bool) -> None:
    why = postgres_available()
    if why:
        pytest.skip(why)
    port = free_port()
    with ExitStack() as stack:
        broker = stack.enter_context(running_mosquitto(tmp_path / "mosquitto", port=port))
        url = stack.enter_context(fresh_postgres())
        home = seed(url, TABLETS)
        backend = replica(tmp_path, "a", url, broker)
        stack.callback(backend.stop)
        backend.start()
        (tmp_path / "tablets").mkdir()
        tablets = [
            enrol(backend.base_url, issue_code(url, tid), tmp_path / "tablets" / f"{tid}.db")
            for tid in home.tablets
        ]
        for tablet in tablets:
            stack.callback(tablet.stop)
            assert tablet.link.wait_connected(20)

        sent: list[str] = []
        sent_at: dict[str, float] = {}
        marks: dict[str, float] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def stream(tablet: Tablet) -> None:
            n = 0
            while not stop.is_set():
                # What the kiosk does: into the outbox, then published if connected.
                event_id = tablet.link.send_event("heartbeat", {"battery": 50, "n": n})
                with lock:
                    sent.append(event_id)
                    sent_at[event_id] = time.monotonic()
                n += 1
                time.sleep(1 / RATE_PER_TABLET)

        threads = [threading.Thread(target=stream, args=(t,), daemon=True) for t in tablets]
        for thread in threads:
            thread.start()

        time.sleep(2)
        if not kill_broker:
            time.sleep(1)
            marks["backend killed"] = time.monotonic()
            backend.kill()
            time.sleep(1.5)
            backend.start()
            time.sleep(3)
        # Mosquitto writes its sessions to disk every ``autosave_interval`` (60 s in
        # deploy/mosquitto/mosquitto.conf) and on SIGUSR1. The backend's session, with its shared
        # subscriptions, is there after its first minute; this test is shorter, so ask for it.
        if kill_broker:
            broker.process.send_signal(signal.SIGUSR1)
            time.sleep(1)
            marks["broker killed"] = time.monotonic()
            broker.process.send_signal(signal.SIGKILL)
            broker.process.wait(5)
            time.sleep(1.5)
            broker = stack.enter_context(running_mosquitto(tmp_path / "mosquitto", port=port))
            marks["broker restarted"] = time.monotonic()
            time.sleep(4)
            marks["backend killed"] = time.monotonic()
            backend.kill()
            time.sleep(1.5)
            backend.start()
            time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(5)

        expected = len(set(sent))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows, distinct, _ = count_events(url)
            pending = sum(t.store.outbox_size() for t in tablets)
            if distinct >= expected and pending == 0:
                break
            time.sleep(0.5)
        rows, distinct, _ = count_events(url)
        pending = sum(t.store.outbox_size() for t in tablets)
        print(f"\n{expected} events sent, {rows} rows, {distinct} distinct, {pending} in outboxes")
        assert expected == len(sent) > 1000
        assert pending == 0
        assert rows == distinct  # nothing twice
        missing = sorted(sent_at[i] for i in set(sent) - stored_ids(url))
        why = (
            f"{len(missing)} of {expected} lost, sent from {missing[:1]} to {missing[-1:]}; {marks}"
        )
        assert distinct == expected, why
        assert "Outgoing messages are being dropped" not in broker.log()


def stored_ids(url: str) -> set[str]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return set(conn.execute(text("SELECT id FROM tablet_events")).scalars())
    finally:
        db.engine.dispose()
