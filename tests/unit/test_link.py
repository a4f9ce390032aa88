"""The tablet's MQTT link, without a broker: what it does with each inbound message."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import MQTTMessage

from kiosk import protocol
from kiosk.link import Link, event_item, validate_config
from kiosk.protocol import Channel, Envelope, MalformedMessage, MessageType
from kiosk.settings import Credentials, MqttCredentials
from kiosk.store import Store

TID = "t0123456789ab"
OTHER = "t999999999999"

CONFIG: dict[str, Any] = {
    "revision": 4,
    "tablet": {"id": TID, "name": "Salon"},
    "home": {"id": "h1", "name": "Les Tilleuls", "timezone": "Europe/Paris"},
    "residents": [
        {
            "id": "r1",
            "first_name": "Marcel",
            "kind": "senior",
            "language": "fr",
            "contacts": [
                {
                    "id": "c1",
                    "approval_id": "a1",
                    "display_name": "Julie",
                    "relation": "",
                    "photo_url": None,
                    "policy": {},
                }
            ],
        }
    ],
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "kiosk.db")
    yield s
    s.close()


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def link(store: Store, events: list[dict[str, Any]]) -> Link:
    credentials = Credentials(
        server_url="http://127.0.0.1:9",
        tablet_id=TID,
        tablet_name="Salon",
        home_name="Les Tilleuls",
        mqtt=MqttCredentials(host="127.0.0.1", port=9, username=TID, password="pw"),
    )
    # Never started: nothing here opens a socket.
    return Link(credentials, store, app_version="0.1.0", listener=events.append)


def config_payload(data: Any, msg_type: str = MessageType.CONFIG) -> bytes:
    return Envelope(type=msg_type, data=data).to_bytes()


def config_topic(tablet_id: str = TID) -> str:
    return protocol.topic(tablet_id, Channel.CONFIG)


def message(topic_name: str, payload: bytes) -> MQTTMessage:
    msg = MQTTMessage(topic=topic_name.encode())
    msg.payload = payload
    return msg


def test_a_valid_config_is_stored_and_emitted(
    link: Link, store: Store, events: list[dict[str, Any]]
) -> None:
    link._handle(config_topic(), config_payload(CONFIG))
    assert store.load_config() == CONFIG
    assert events == [{"event": "config", "revision": 4, "config": CONFIG}]


def _missing_revision() -> dict[str, Any]:
    data = json.loads(json.dumps(CONFIG))
    del data["revision"]
    return data


def _contact_without_approval() -> dict[str, Any]:
    data = json.loads(json.dumps(CONFIG))
    del data["residents"][0]["contacts"][0]["approval_id"]
    return data


BAD_CONFIGS = {
    "not JSON": (config_topic(), b"{this is not json"),
    "wrong type": (config_topic(), config_payload(CONFIG, msg_type=MessageType.COMMAND)),
    "missing revision": (config_topic(), config_payload(_missing_revision())),
    "string revision": (config_topic(), config_payload({**CONFIG, "revision": "5"})),
    "residents not a list": (config_topic(), config_payload({**CONFIG, "residents": {}})),
    "resident without id": (config_topic(), config_payload({**CONFIG, "residents": [{}]})),
    "contact without approval_id": (config_topic(), config_payload(_contact_without_approval())),
    "another tablet's topic": (config_topic(OTHER), config_payload({**CONFIG, "revision": 9})),
    "not a Liens topic": ("somewhere/else", config_payload({**CONFIG, "revision": 9})),
    "a channel the tablet does not read": (
        protocol.topic(TID, Channel.EVENTS),
        config_payload({**CONFIG, "revision": 9}),
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_malformed_config_is_refused_and_the_cached_one_kept(
    case: str, link: Link, store: Store, events: list[dict[str, Any]]
) -> None:
    link._handle(config_topic(), config_payload(CONFIG))
    events.clear()
    topic_name, payload = BAD_CONFIGS[case]
    with pytest.raises(MalformedMessage):
        link._handle(topic_name, payload)
    assert store.load_config() == CONFIG
    assert events == []


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_on_message_drops_malformed_messages_without_raising(
    case: str, link: Link, store: Store, events: list[dict[str, Any]]
) -> None:
    topic_name, payload = BAD_CONFIGS[case]
    link._on_message(link.client, None, message(topic_name, payload))
    assert link.dropped == 1
    assert store.load_config() is None
    assert events == []


def test_on_message_survives_a_failing_listener(
    store: Store, link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(event: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    link.listener = explode
    with caplog.at_level(logging.ERROR):
        link._on_message(link.client, None, message(config_topic(), config_payload(CONFIG)))
    assert store.load_config() == CONFIG
    assert "listener failed" in caplog.text


def test_on_message_survives_an_unexpected_error(
    link: Link, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(link.store, "save_config", broken)
    with caplog.at_level(logging.ERROR):
        link._on_message(link.client, None, message(config_topic(), config_payload(CONFIG)))
    assert "unexpected error" in caplog.text


def test_an_empty_retained_config_retires_the_tablet(
    link: Link, store: Store, events: list[dict[str, Any]]
) -> None:
    link._handle(config_topic(), config_payload(CONFIG))
    link._on_message(link.client, None, message(config_topic(), b""))
    assert store.load_config() is None
    assert events[-1] == {"event": "retired"}


def test_commands_and_signals_are_emitted(link: Link, events: list[dict[str, Any]]) -> None:
    command = Envelope(type=MessageType.COMMAND, data={"command": "reload"})
    signal = Envelope(type=MessageType.SIGNAL, data={"kind": "ring", "call_id": "c1"})
    link._handle(protocol.topic(TID, Channel.CMD), command.to_bytes())
    link._handle(protocol.topic(TID, Channel.SIGNAL_IN), signal.to_bytes())
    assert events == [
        {"event": "command", "command": "reload", "data": {"command": "reload"}},
        {"event": "signal", "data": {"kind": "ring", "call_id": "c1"}},
    ]


def test_event_item_is_a_valid_envelope_on_the_events_topic() -> None:
    item = event_item(TID, "call_ended", {"duration_s": 42})
    assert item.topic == f"liens/v1/tablets/{TID}/events"
    assert protocol.parse_topic(item.topic) == protocol.TabletTopic(TID, Channel.EVENTS)
    assert Channel.EVENTS in protocol.TABLET_PUBLISHES
    envelope = protocol.parse_envelope(item.payload)
    assert envelope.id == item.id
    assert envelope.type == MessageType.EVENT
    assert envelope.data == {"event": "call_ended", "duration_s": 42}
    assert event_item(TID, "call_ended", {}).id != item.id


def test_send_event_offline_waits_in_the_outbox(link: Link, store: Store) -> None:
    item_id = link.send_event("app_started", {})
    assert [item.id for item in store.pending()] == [item_id]


def test_validate_config_accepts_a_resident_without_contacts() -> None:
    data = {"revision": 0, "residents": [{"id": "r1"}]}
    assert validate_config(data) is data
