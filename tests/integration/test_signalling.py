"""Call signalling through the real backend: a family page's WebSocket ⇄ backend ⇄ MQTT ⇄ tablet.

The tablet here is a bare paho client with the tablet's own credentials, so that every message
the backend relays (or refuses to relay) is seen exactly; the media path is tested end to end
with Chromium and aiortc in ``test_call_e2e.py``.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
import requests
from sqlalchemy import select
from websockets.sync.client import ClientConnection, connect

from backend.models import Call
from kiosk import protocol
from kiosk.protocol import Channel, Envelope, MessageType
from tests.helpers import RunningBackend

FAR_AWAY_DAY = (datetime.now(ZoneInfo("Europe/Paris")).weekday() + 3) % 7
CLOSED_NOW = {"windows": [{"days": [FAR_AWAY_DAY], "start": "14:00", "end": "18:00"}]}

# How long a message may take to arrive: a deadline, not a measure (a loaded 2-core CI machine
# has been seen to take several seconds where an idle one takes milliseconds).
WAIT_S = 15.0


class FakeTablet:
    """The tablet's MQTT side, by hand: its own credentials, its own topics."""

    def __init__(self, backend: RunningBackend, tablet_id: str) -> None:
        body = requests.post(
            f"{backend.base_url}/api/v1/enrol",
            json={"code": backend.issue_code(tablet_id)},
            timeout=10,
        ).json()
        m = body["mqtt"]
        self.tablet_id = tablet_id
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=tablet_id)
        self.client.username_pw_set(m["username"], m["password"])
        self.client.on_message = self._on_message
        self.client.connect(m["host"], m["port"])
        self.client.loop_start()
        self.client.subscribe(protocol.topic(tablet_id, Channel.SIGNAL_IN), qos=1)
        self.client.publish(
            protocol.topic(tablet_id, Channel.STATUS),
            protocol.status_payload(True, app_version="test"),
            qos=1,
            retain=True,
        ).wait_for_publish(5)
        self._wait_online(backend)

    def _wait_online(self, backend: RunningBackend) -> None:
        from backend.models import Tablet

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with backend.db.session() as s:
                tablet = s.get(Tablet, self.tablet_id)
                if tablet is not None and tablet.online:
                    return
            time.sleep(0.05)
        raise AssertionError("the backend never saw the tablet online")

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        envelope = protocol.parse_envelope(bytes(message.payload))
        assert envelope.type == MessageType.SIGNAL
        self.inbox.put(envelope.data)

    def send(self, **data: Any) -> None:
        payload = Envelope(type=MessageType.SIGNAL, data=data).to_bytes()
        topic = protocol.topic(self.tablet_id, Channel.SIGNAL_OUT)
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def expect(self, kind: str, timeout: float = WAIT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"tablet never received {kind!r}") from None
            if data.get("kind") == kind:
                return data

    def expect_nothing(self, wait: float = 0.7) -> None:
        try:
            data = self.inbox.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"tablet received {data} but should not have")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Page:
    """A family page's WebSocket."""

    def __init__(self, backend: RunningBackend, token: str, lang: str = "fr") -> None:
        url = backend.base_url.replace("http://", "ws://") + f"/f/{token}/ws?lang={lang}"
        self.ws: ClientConnection = connect(url, open_timeout=5)
        self.hello = self.expect("hello")

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))

    def expect(self, kind: str, timeout: float = WAIT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"page never received {kind!r}")
            try:
                message = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                continue
            if message.get("type") == kind:
                return message

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def setup(backend: RunningBackend) -> Iterator[dict[str, Any]]:
    ids = backend.seed(contacts=2)
    resident = ids["residents"][0]
    backend.approve(resident, ids["contacts"][0])
    backend.approve(resident, ids["contacts"][1], policy=CLOSED_NOW)
    tablet = FakeTablet(backend, ids["tablet"])
    try:
        yield {**ids, "resident": resident, "fake_tablet": tablet}
    finally:
        tablet.close()


def call_row(backend: RunningBackend, call_id: str) -> Call:
    deadline = time.monotonic() + 3
    while True:
        with backend.db.session() as s:
            call = s.get(Call, call_id)
            if call is not None and call.end_at is not None:
                return call
        if time.monotonic() > deadline:
            raise AssertionError(f"call {call_id} has no end in the log")
        time.sleep(0.05)


def test_relative_calls_resident_and_hangs_up(backend: RunningBackend, setup: dict) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][0])
    assert page.hello["residents"][0]["available"] is True
    page.send(type="call", resident_id=setup["resident"])
    call_id = page.expect("calling")["call_id"]
    invite = tablet.expect("invite")
    assert invite["call_id"] == call_id and invite["contact"]["display_name"] == "Julie"
    assert invite["ice_servers"] == []  # no public STUN by default
    tablet.send(kind="ringing", call_id=call_id)
    page.expect("ringing")
    tablet.send(kind="accept", call_id=call_id)
    page.expect("accepted")
    page.send(type="offer", call_id=call_id, sdp="v=0 offer")
    assert tablet.expect("offer")["sdp"] == "v=0 offer"
    tablet.send(kind="answer", call_id=call_id, sdp="v=0 answer")
    assert page.expect("answer")["sdp"] == "v=0 answer"
    time.sleep(1.1)
    page.send(type="hangup", call_id=call_id)
    assert tablet.expect("hangup")["reason"] == "hung_up"
    row = call_row(backend, call_id)
    assert row.direction == "to_resident" and row.outcome == "completed"
    assert row.ended_by == "contact" and row.tablet_id == tablet.tablet_id
    assert row.ring_at and row.answer_at and row.duration_s is not None and row.duration_s >= 1
    page.close()


def test_resident_calls_relative_who_answers(backend: RunningBackend, setup: dict) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][0])
    approval_id = _approval_id(backend, setup["resident"], setup["contacts"][0])
    tablet.send(kind="invite", call_id="c" * 32, approval_id=approval_id)
    incoming = page.expect("incoming")
    assert incoming["resident"]["first_name"] == "Marcel"
    tablet.expect("ringing")
    page.send(type="accept", call_id=incoming["call_id"])
    tablet.expect("accepted")
    page.send(type="offer", call_id=incoming["call_id"], sdp="v=0 offer")
    tablet.expect("offer")
    tablet.send(kind="answer", call_id=incoming["call_id"], sdp="v=0 answer")
    page.expect("answer")
    tablet.send(kind="hangup", call_id=incoming["call_id"], reason="hung_up")
    assert page.expect("ended")["reason"] == "hung_up"
    row = call_row(backend, incoming["call_id"])
    assert (row.direction, row.outcome, row.ended_by) == ("from_resident", "completed", "resident")
    page.close()


def test_outside_its_window_nobody_rings(backend: RunningBackend, setup: dict) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][1])
    marcel = page.hello["residents"][0]
    assert marcel["available"] is False and "prochain créneau" in marcel["message"]
    page.send(type="call", resident_id=setup["resident"])
    refused = page.expect("refused")
    assert refused["reason"] == "policy" and refused["message"].startswith("Marcel n'est pas")
    tablet.expect_nothing()
    # And the other way: the tablet's invite for that pair is turned down, the page never rings.
    approval_id = _approval_id(backend, setup["resident"], setup["contacts"][1])
    tablet.send(kind="invite", call_id="d" * 32, approval_id=approval_id)
    assert tablet.expect("hangup")["reason"] == "policy"
    with pytest.raises(AssertionError):
        page.expect("incoming", timeout=0.7)
    page.close()


def test_an_unapproved_pair_cannot_ring_either_side(backend: RunningBackend, setup: dict) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    backend_contacts = setup["contacts"]
    # Revoke Julie, then she tries, and the tablet tries her.
    from backend.services import directory

    with backend.db.session() as s:
        directory.revoke(
            session=s, resident_id=setup["resident"], contact_id=backend_contacts[0], by="test"
        )
    page = Page(backend, setup["tokens"][0])
    assert page.hello["residents"] == []
    page.send(type="call", resident_id=setup["resident"])
    assert page.expect("refused")["reason"] == "policy"
    tablet.expect_nothing()
    approval_id = _approval_id(backend, setup["resident"], backend_contacts[0])
    tablet.send(kind="invite", call_id="e" * 32, approval_id=approval_id)
    assert tablet.expect("hangup")["reason"] == "policy"
    page.close()


def test_a_call_the_relative_missed_is_shown_next_time(
    backend: RunningBackend, setup: dict
) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    approval_id = _approval_id(backend, setup["resident"], setup["contacts"][0])
    tablet.send(kind="invite", call_id="f" * 32, approval_id=approval_id)
    assert tablet.expect("hangup")["reason"] == "unavailable"
    assert call_row(backend, "f" * 32).outcome == "unavailable"
    page = Page(backend, setup["tokens"][0])
    assert [m["resident_first_name"] for m in page.hello["missed"]] == ["Marcel"]
    page.close()
    again = Page(backend, setup["tokens"][0])
    assert again.hello["missed"] == []  # shown once
    again.close()


def test_unanswered_call_is_missed(backend: RunningBackend, setup: dict) -> None:
    backend.settings.ring_timeout_s = 0.5
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][0])
    page.send(type="call", resident_id=setup["resident"])
    call_id = page.expect("calling")["call_id"]
    tablet.expect("invite")
    tablet.send(kind="ringing", call_id=call_id)
    assert page.expect("ended")["reason"] == "missed"
    assert tablet.expect("hangup")["reason"] == "missed"
    assert call_row(backend, call_id).outcome == "missed"
    page.close()


def test_strangers_and_garbage_are_dropped(backend: RunningBackend, setup: dict) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][0])
    page.ws.send("not json")
    page.send(type="offer", call_id="nope", sdp="x")
    page.send(no_type=True)
    page.send(type="call", resident_id="no-such-resident")
    assert page.expect("refused")["reason"] == "policy"
    tablet.send(kind="answer", call_id="unknown", sdp="x")
    tablet.send(kind="invite", call_id="g" * 32, approval_id="no-such-approval")
    assert tablet.expect("hangup")["reason"] == "policy"
    # Still serving: a real call goes through.
    page.send(type="call", resident_id=setup["resident"])
    page.expect("calling")
    tablet.expect("invite")
    page.close()
    bad = requests.get(backend.base_url + "/f/not-a-token", timeout=5)
    assert bad.status_code == 404


def _approval_id(backend: RunningBackend, resident_id: str, contact_id: str) -> str:
    from backend.services.directory import find_approval

    with backend.db.session() as s:
        approval = find_approval(s, resident_id, contact_id)
        assert approval is not None
        return approval.id


def test_call_log_has_no_media(backend: RunningBackend, setup: dict) -> None:
    columns = {c.name for c in Call.__table__.columns}
    assert not {"sdp", "media", "recording"} & columns
    with backend.db.session() as s:
        assert list(s.scalars(select(Call))) == []
