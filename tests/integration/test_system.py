"""The first real path through Liens: enrol a tablet, approve a contact, see it on the tablet."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import requests
from sqlalchemy import select

from backend.models import AuditEntry, TabletEvent
from kiosk import protocol
from kiosk.protocol import Channel
from tests.helpers import ROOT, HeadlessKiosk, RunningBackend, contact_names


def enrol(base_url: str, code: str) -> requests.Response:
    return requests.post(f"{base_url}/api/v1/enrol", json={"code": code}, timeout=10)


def test_enrolment_code_works_once(backend: RunningBackend) -> None:
    ids = backend.seed()
    code = backend.issue_code(ids["tablet"])
    first = enrol(backend.base_url, code)
    assert first.status_code == 200, first.text
    assert first.json()["tablet_id"] == ids["tablet"]
    again = enrol(backend.base_url, code)
    assert again.status_code == 403
    assert again.json()["detail"]["reason"] == "used_code"
    wrong = enrol(backend.base_url, "00000000")
    assert wrong.status_code == 403
    assert wrong.json()["detail"]["reason"] == "invalid_code"


def test_expired_enrolment_code_is_refused(backend: RunningBackend) -> None:
    ids = backend.seed()
    code = backend.issue_code(ids["tablet"], ttl=timedelta(seconds=-1))
    response = enrol(backend.base_url, code)
    assert response.status_code == 403
    assert response.json()["detail"]["reason"] == "expired_code"


def test_a_new_code_replaces_the_unused_one(backend: RunningBackend) -> None:
    ids = backend.seed()
    old = backend.issue_code(ids["tablet"])
    new = backend.issue_code(ids["tablet"])
    assert enrol(backend.base_url, old).status_code == 403
    assert enrol(backend.base_url, new).status_code == 200


def test_enrolment_over_http_then_mqtt_on_mosquitto(
    backend_on_mosquitto: RunningBackend, tmp_path: Path
) -> None:
    """The tablet's own credentials, created in Mosquitto's dynsec by the backend, work."""
    b = backend_on_mosquitto
    ids = b.seed()
    b.approve(ids["residents"][0], ids["contacts"][0])
    body = enrol(b.base_url, b.issue_code(ids["tablet"])).json()
    m = body["mqtt"]
    assert m["username"] == ids["tablet"] and m["port"] == b.settings.mqtt_port
    received: list[mqtt.MQTTMessage] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ids["tablet"])
    client.username_pw_set(m["username"], m["password"])
    client.on_message = lambda c, u, msg: received.append(msg)
    client.connect(m["host"], m["port"])
    client.loop_start()
    try:
        client.subscribe(protocol.topic(ids["tablet"], Channel.CONFIG), qos=1)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    assert received, "no retained config reached the tablet"
    config = protocol.parse_envelope(received[0].payload)
    assert received[0].retain
    assert [c["display_name"] for c in config.data["residents"][0]["contacts"]] == ["Julie"]


def _run_cli(b: RunningBackend, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "liens", "admin", *args],
        env=b.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def _decided_at(b: RunningBackend, approval_id: str, action: str) -> float:
    with b.db.session() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_id == approval_id, AuditEntry.action == action)
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry is not None
        return entry.at.timestamp()


def test_cli_approve_and_revoke_reach_the_headless_kiosk_within_a_second(
    any_backend: RunningBackend, tmp_path: Path
) -> None:
    b = any_backend
    ids = b.seed(contacts=2)
    b.approve(ids["residents"][0], ids["contacts"][0])
    kiosk = HeadlessKiosk(tmp_path / "kiosk", b.base_url, code=b.issue_code(ids["tablet"]))
    try:
        first = kiosk.wait_for(lambda e: e["event"] == "config")
        assert contact_names(first) == ["Julie"]

        approved = _run_cli(
            b, "approve", "--resident", ids["residents"][0], "--contact", ids["contacts"][1]
        )
        assert approved["published_to"] == [ids["tablet"]]
        shown = kiosk.wait_for(lambda e: e["event"] == "config" and "Thomas" in contact_names(e))
        latency = shown["t"] - _decided_at(b, approved["id"], "approval.approve")
        assert contact_names(shown) == ["Julie", "Thomas"]
        assert latency < 1.0, f"approval took {latency:.3f} s to reach the tablet"

        revoked = _run_cli(
            b,
            "revoke",
            "--resident",
            ids["residents"][0],
            "--contact",
            ids["contacts"][0],
            "--reason",
            "test",
        )
        gone = kiosk.wait_for(lambda e: e["event"] == "config" and "Julie" not in contact_names(e))
        latency = gone["t"] - _decided_at(b, revoked["id"], "approval.revoke")
        assert contact_names(gone) == ["Thomas"]
        assert latency < 1.0, f"revocation took {latency:.3f} s to reach the tablet"
    finally:
        kiosk.stop()


def test_headless_kiosk_shows_its_cached_contacts_when_the_server_is_gone(
    tmp_path: Path,
) -> None:
    from tests.helpers import running_backend

    with running_backend(tmp_path / "server") as b:
        ids = b.seed()
        b.approve(ids["residents"][0], ids["contacts"][0])
        kiosk = HeadlessKiosk(tmp_path / "kiosk", b.base_url, code=b.issue_code(ids["tablet"]))
        kiosk.wait_for(lambda e: e["event"] == "config" and contact_names(e) == ["Julie"])
        kiosk.stop()
    # Server and broker are gone: a restarted kiosk still shows Julie from its cache.
    kiosk = HeadlessKiosk(tmp_path / "kiosk", b.base_url)
    try:
        cached = kiosk.wait_for(lambda e: e["event"] == "config")
        assert cached.get("cached") is True and contact_names(cached) == ["Julie"]
    finally:
        kiosk.stop()
    creds = tmp_path / "kiosk" / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600


def test_every_cli_change_is_in_the_audit_log(backend: RunningBackend) -> None:
    home = _run_cli(backend, "home", "add", "--name", "Maison d'enfants du Parc")
    resident = _run_cli(
        backend, "resident", "add", "--home", home["id"], "--first-name", "Léa", "--kind", "youth"
    )
    contact = _run_cli(
        backend,
        "contact",
        "add",
        "--home",
        home["id"],
        "--name",
        "Mamie Rose",
        "--relation",
        "grand-mère",
    )
    assert contact["personal_link"].startswith(backend.base_url + "/f/")
    approval = _run_cli(
        backend, "approve", "--resident", resident["id"], "--contact", contact["id"]
    )
    _run_cli(backend, "revoke", "--resident", resident["id"], "--contact", contact["id"])
    tablet = _run_cli(backend, "tablet", "add", "--home", home["id"], "--name", "Salle commune")
    assert len(tablet["enrolment_code"]) == 8
    actions = [e["action"] for e in _run_cli(backend, "audit", "list")]
    for expected in [
        "home.add",
        "resident.add",
        "contact.add",
        "approval.approve",
        "approval.revoke",
        "tablet.add",
        "tablet.enrolment_code",
    ]:
        assert expected in actions
    listed = _run_cli(backend, "approval", "list", "--resident", resident["id"])
    assert [a["status"] for a in listed] == ["revoked"] and listed[0]["id"] == approval["id"]


def test_cli_refuses_bad_input_with_a_sentence(backend: RunningBackend) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "liens",
            "admin",
            "home",
            "add",
            "--name",
            "X",
            "--timezone",
            "Mars/Olympus",
        ],
        env=backend.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "Unknown time zone" in json.loads(out.stdout)["error"]


HEAD = b'{"v": 1, "id": "0123456789", "ts": "2026-01-01T00:00:00Z", '
MALFORMED = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'{"v": 2, "id": "0123456789", "ts": "2026-01-01T00:00:00Z", "type": "event", "data": {}}',
    b'{"v": 1, "id": "x", "ts": "2026-01-01T00:00:00Z", "type": "event", "data": {}}',
    b'{"v": 1, "id": "0123456789", "ts": "yesterday", "type": "event", "data": {}}',
    b'{"v": 1, "id": "0123456789", "ts": "2026-01-01T00:00:00Z", "type": "event", "data": []}',
    HEAD + b'"type": "status", "data": {"state": "asleep"}}',
    HEAD + b'"type": "event", "data": {"no": "name"}}',
    b"[" * 100_000,
    b"x" * 300_000,
]


def test_malformed_payloads_on_every_backend_topic_are_dropped(any_backend: RunningBackend) -> None:
    b = any_backend
    ids = b.seed()
    body = enrol(b.base_url, b.issue_code(ids["tablet"])).json()
    m = body["mqtt"]
    tablet = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ids["tablet"])
    tablet.username_pw_set(m["username"], m["password"])
    tablet.connect(m["host"], m["port"])
    tablet.loop_start()
    bridge = b.backend.bridge
    assert bridge is not None
    dropped_before = bridge.dropped
    try:
        for channel in (Channel.STATUS, Channel.EVENTS, Channel.SIGNAL_OUT):
            for payload in MALFORMED:
                if channel is Channel.STATUS and payload == b"":
                    continue  # an empty retained status is the MQTT way to clear it
                tablet.publish(
                    protocol.topic(ids["tablet"], channel), payload, qos=1
                ).wait_for_publish(5)
        # Then a good event: the bridge is still consuming and stores it exactly once.
        good = protocol.Envelope(
            type="event", data={"event": "activity_started", "activity": "photos"}
        )
        for _ in range(3):  # a redelivered duplicate
            tablet.publish(
                protocol.topic(ids["tablet"], Channel.EVENTS), good.to_bytes(), qos=1
            ).wait_for_publish(5)
        deadline = time.monotonic() + 5
        stored = 0
        while time.monotonic() < deadline:
            with b.db.session() as s:
                stored = len(list(s.scalars(select(TabletEvent).where(TabletEvent.id == good.id))))
            if stored:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        with b.db.session() as s:
            stored = len(list(s.scalars(select(TabletEvent).where(TabletEvent.id == good.id))))
    finally:
        tablet.disconnect()
        tablet.loop_stop()
    assert stored == 1
    expected_drops = 3 * len(MALFORMED) - 1
    assert bridge.dropped - dropped_before == expected_drops
    assert requests.get(f"{b.base_url}/healthz", timeout=5).json()["mqtt_connected"] is True


def test_status_and_last_will_mark_the_tablet_online_then_offline(
    backend: RunningBackend, tmp_path: Path
) -> None:
    from backend.models import Tablet

    ids = backend.seed()
    kiosk = HeadlessKiosk(
        tmp_path / "kiosk", backend.base_url, code=backend.issue_code(ids["tablet"])
    )
    kiosk.wait_for(lambda e: e["event"] == "connected")

    def online() -> bool:
        with backend.db.session() as s:
            t = s.get(Tablet, ids["tablet"])
            assert t is not None
            return t.online

    deadline = time.monotonic() + 5
    while not online() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert online()
    kiosk.proc.kill()  # no goodbye: the broker publishes the last will
    kiosk.proc.wait()
    deadline = time.monotonic() + 60
    while online() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not online()
    assert datetime.now().year >= 2024


def test_guessing_enrolment_codes_is_stopped(backend: RunningBackend) -> None:
    ids = backend.seed()
    good = backend.issue_code(ids["tablet"])
    answers = [enrol(backend.base_url, f"{n:08d}").status_code for n in range(11)]
    assert answers[:10] == [403] * 10 and answers[10] == 429
    # Even the right code waits now: the guesser cannot tell it from a wrong one.
    blocked = enrol(backend.base_url, good)
    assert blocked.status_code == 429
    assert "wait" in blocked.json()["detail"]["detail"]


def test_a_late_last_will_of_an_earlier_run_does_not_mark_the_tablet_offline(
    backend: RunningBackend,
) -> None:
    from backend.models import Tablet

    ids = backend.seed()
    bridge = backend.backend.bridge
    assert bridge is not None
    topic = protocol.topic(ids["tablet"], Channel.STATUS)

    def online() -> bool:
        with backend.db.session() as s:
            tablet = s.get(Tablet, ids["tablet"])
            assert tablet is not None
            return tablet.online

    bridge.handle(topic, protocol.status_payload(True, app_version="1", session="new-run"))
    assert online()
    bridge.handle(topic, protocol.status_payload(False, app_version="1", session="old-run"))
    assert online(), "the old run's will must not hide the new run"
    bridge.handle(topic, protocol.status_payload(False, app_version="1", session="new-run"))
    assert not online()
