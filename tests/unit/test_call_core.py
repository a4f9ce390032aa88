"""Calls through the kiosk core, the link and the headless commands, without a broker."""

from __future__ import annotations

import io
import json
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk import protocol
from kiosk.calls import CallRefused
from kiosk.core import KioskCore
from kiosk.headless import JsonLines, run_command
from kiosk.link import Link
from kiosk.protocol import Channel, MessageType
from kiosk.settings import Credentials, KioskSettings, MqttCredentials
from kiosk.store import Store

TID = "t0123456789ab"
CONFIG: dict[str, Any] = {
    "revision": 1,
    "home": {"id": "h1", "name": "Les Tilleuls", "timezone": "Europe/Paris"},
    "residents": [
        {
            "id": "r1",
            "first_name": "Marcel",
            "contacts": [
                {"id": "c1", "approval_id": "a1", "display_name": "Julie", "policy": {}},
                {
                    "id": "c2",
                    "approval_id": "a-never",
                    "display_name": "Paul",
                    "policy": {"quiet_hours": {"start": "00:00", "end": "23:59"}},
                },
            ],
        }
    ],
}


class FakeLink:
    """What the core needs of a link: signals and events go to lists."""

    connected = True

    def __init__(self) -> None:
        self.signals: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[tuple[str, dict[str, Any]]] = []

    def send_signal(self, data: dict[str, Any]) -> None:
        self.signals.put(data)

    def send_event(self, event_type: str, data: dict[str, Any]) -> str:
        self.events.append((event_type, data))
        return "id"

    def stop(self) -> None:
        pass


@pytest.fixture
def core(tmp_path: Path) -> Iterator[tuple[KioskCore, FakeLink, queue.Queue[dict[str, Any]]]]:
    seen: queue.Queue[dict[str, Any]] = queue.Queue()
    c = KioskCore(KioskSettings(data_dir=tmp_path), listener=seen.put, media="synthetic")
    link = FakeLink()
    c.link = link  # type: ignore[assignment]
    c._config = CONFIG
    c._start_calls()
    yield c, link, seen
    c.close()


def next_call_event(seen: queue.Queue[dict[str, Any]]) -> dict[str, Any]:
    while True:
        event = seen.get(timeout=5)
        if event["event"] == "call":
            return event


def test_an_invite_from_the_link_rings_and_the_signal_is_not_shown_to_the_ui(core: Any) -> None:
    c, link, seen = core
    c._on_link_event(
        {"event": "signal", "data": {"kind": "invite", "call_id": "k1", "approval_id": "a1"}}
    )
    assert link.signals.get(timeout=5) == {"kind": "ringing", "call_id": "k1"}
    event = seen.get(timeout=5)
    assert event == {
        "event": "call",
        "state": "incoming",
        "call_id": "k1",
        "approval_id": "a1",
        "resident_id": "r1",
        "direction": "incoming",
        "contact_name": "Julie",
        "reason": None,
        "auto_answer_s": None,
    }
    assert c.call is not None and c.call.contact_name == "Julie"
    c.decline_call()
    assert link.signals.get(timeout=5)["reason"] == "declined"
    assert next_call_event(seen)["reason"] == "declined"
    assert c.call is None
    assert [kind for kind, _ in link.events] == ["call_started", "call_ended"]


def test_start_call_refusals(core: Any, tmp_path: Path) -> None:
    c, link, seen = core
    with pytest.raises(CallRefused) as refused:
        c.start_call("a-never")
    assert refused.value.reason == "policy"
    call_id = c.start_call("a1")
    assert link.signals.get(timeout=5)["kind"] == "invite"
    with pytest.raises(CallRefused) as busy:
        c.start_call("a1")
    assert busy.value.reason == "busy"
    c._on_link_event({"event": "command", "command": "end_call", "data": {"call_id": call_id}})
    assert link.signals.get(timeout=5) == {"kind": "hangup", "call_id": call_id, "reason": "policy"}

    offline = KioskCore(KioskSettings(data_dir=tmp_path / "other"))
    try:
        with pytest.raises(CallRefused) as network:
            offline.start_call("a1")
        assert network.value.reason == "network"
    finally:
        offline.close()


def test_headless_commands(core: Any) -> None:
    c, link, seen = core
    out = io.StringIO()
    emit = JsonLines(out)
    run_command(c, '{"cmd": "call", "approval_id": "a-never"}', emit)
    run_command(c, '{"cmd": "stats"}', emit)
    run_command(c, "not json", emit)
    run_command(c, '{"cmd": "fly"}', emit)
    run_command(c, '{"cmd": "call", "approval_id": "a1"}', emit)
    assert link.signals.get(timeout=5)["kind"] == "invite"
    run_command(c, '{"cmd": "hangup"}', emit)
    assert link.signals.get(timeout=5)["reason"] == "cancelled"
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "call_refused" and lines[0]["reason"] == "policy"
    assert lines[0]["next_allowed"] is not None
    assert lines[1]["event"] == "stats" and lines[1]["state"] == "idle"
    assert lines[1]["frames_decoded"] == 0
    assert [line["event"] for line in lines[2:]] == ["command_error", "command_error"]


def test_send_signal_publishes_on_signal_out_with_qos_1_and_skips_the_outbox(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "kiosk.db")
    credentials = Credentials(
        server_url="http://127.0.0.1:9",
        tablet_id=TID,
        tablet_name="Salon",
        home_name="Les Tilleuls",
        mqtt=MqttCredentials(host="127.0.0.1", port=9, username=TID, password="pw"),
    )
    link = Link(credentials, store, app_version="0.1.0", listener=lambda event: None)
    published: list[tuple[str, bytes, int, bool]] = []

    class Info:
        rc = 0
        mid = 7

    def publish(topic: str, payload: bytes, qos: int, retain: bool) -> Info:
        published.append((topic, payload, qos, retain))
        return Info()

    link.client.publish = publish  # type: ignore[assignment,method-assign]
    link.send_signal({"kind": "answer", "call_id": "k1", "sdp": "v=0"})
    assert published == []  # offline: dropped, not queued for later
    link._connected.set()
    link.send_signal({"kind": "answer", "call_id": "k1", "sdp": "v=0"})
    [(topic, payload, qos, retain)] = published
    assert topic == protocol.topic(TID, Channel.SIGNAL_OUT)
    assert (qos, retain) == (1, False)
    envelope = protocol.parse_envelope(payload)
    assert envelope.type == MessageType.SIGNAL
    assert envelope.data == {"kind": "answer", "call_id": "k1", "sdp": "v=0"}
    assert list(store.pending()) == []
    store.close()
