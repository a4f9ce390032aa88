"""The protocol module: topic grammar, who may use which topic, and envelope validation."""

from __future__ import annotations

import json

import pytest

from kiosk import protocol
from kiosk.protocol import (
    Channel,
    Envelope,
    MalformedMessage,
    MessageType,
    TabletTopic,
    parse_envelope,
    parse_topic,
    topic,
)

TID = "t0123456789ab"
OTHER = "t999999999999"

TABLET_PUBLISHES = {Channel.STATUS, Channel.EVENTS, Channel.SIGNAL_OUT}
TABLET_SUBSCRIBES = {Channel.CONFIG, Channel.SIGNAL_IN, Channel.CMD}


@pytest.mark.parametrize("channel", list(Channel))
def test_topic_round_trip(channel: Channel) -> None:
    name = topic(TID, channel)
    assert name == f"liens/v1/tablets/{TID}/{channel.value}"
    assert parse_topic(name) == TabletTopic(TID, channel)


def test_backend_subscription_is_a_single_level_wildcard() -> None:
    assert protocol.subscription(Channel.EVENTS) == "liens/v1/tablets/+/events"


@pytest.mark.parametrize(
    "tablet_id",
    ["+", "#", "ab+", "ab#cd", "abc/def", "ABCDEF", "Tabc123", "ab", "", "-abc", "a" * 65, "té1"],
)
def test_invalid_tablet_ids_are_refused(tablet_id: str) -> None:
    assert not protocol.is_valid_tablet_id(tablet_id)
    with pytest.raises(ValueError, match="invalid tablet id"):
        topic(tablet_id, Channel.CONFIG)


@pytest.mark.parametrize("tablet_id", ["abc", "t0123456789ab", "home-1_salon", "a" * 64])
def test_valid_tablet_ids(tablet_id: str) -> None:
    assert protocol.is_valid_tablet_id(tablet_id)


@pytest.mark.parametrize(
    "name",
    [
        "liens/v1/tablets/t0123456789ab",  # no channel
        "liens/v1/tablets/t0123456789ab/",  # empty channel
        "liens/v1/tablets/t0123456789ab/signal",  # half a channel
        "liens/v1/tablets/t0123456789ab/config/extra",
        "liens/v1/tablets/+/config",
        "liens/v1/tablets/#",
        "liens/v2/tablets/t0123456789ab/config",
        "other/t0123456789ab/config",
        "liens/v1/tablets/UPPER/config",
        "",
    ],
)
def test_parse_topic_refuses_what_is_not_a_tablet_topic(name: str) -> None:
    assert parse_topic(name) is None


def test_a_tablet_never_writes_what_it_reads() -> None:
    # The broker's ACLs (backend/broker/dynsec.py tablet_acls) are built from these two sets;
    # tests/integration/test_broker_acl.py checks them on the real broker.
    assert protocol.TABLET_PUBLISHES == TABLET_PUBLISHES
    assert protocol.TABLET_SUBSCRIBES == TABLET_SUBSCRIBES
    assert not protocol.TABLET_PUBLISHES & protocol.TABLET_SUBSCRIBES


def test_envelope_round_trip() -> None:
    envelope = Envelope(type=MessageType.EVENT, data={"event": "call_ended", "name": "Zoé"})
    parsed = parse_envelope(envelope.to_bytes())
    assert parsed == envelope
    assert parse_envelope(envelope.to_json()) == envelope
    obj = json.loads(envelope.to_bytes())
    assert set(obj) == {"v", "id", "ts", "type", "data"}
    assert obj["v"] == 1
    assert "Zoé".encode() in envelope.to_bytes()  # UTF-8, not \u escapes


def test_envelopes_get_unique_ids_and_utc_timestamps() -> None:
    a, b = Envelope(type="event", data={}), Envelope(type="event", data={})
    assert a.id != b.id
    assert a.ts.endswith("Z")


def test_status_payload_round_trip() -> None:
    online = parse_envelope(protocol.status_payload(True, app_version="1.2.3"))
    offline = parse_envelope(protocol.status_payload(False, app_version="1.2.3"))
    assert protocol.parse_status(online) is True
    assert protocol.parse_status(offline) is False
    assert online.data == {"state": "online", "app_version": "1.2.3"}


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope(type=MessageType.EVENT, data={"state": "online"}),
        Envelope(type=MessageType.STATUS, data={"state": "maybe"}),
        Envelope(type=MessageType.STATUS, data={}),
    ],
)
def test_parse_status_refuses_anything_else(envelope: Envelope) -> None:
    with pytest.raises(MalformedMessage):
        protocol.parse_status(envelope)


def _good(**changes: object) -> dict[str, object]:
    obj: dict[str, object] = {
        "v": 1,
        "id": "0123456789abcdef",
        "ts": "2026-11-23T10:00:00.000Z",
        "type": "event",
        "data": {"event": "x"},
    }
    obj.update(changes)
    return obj


def _without(key: str) -> dict[str, object]:
    obj = _good()
    del obj[key]
    return obj


def test_the_reference_payload_is_valid() -> None:
    assert parse_envelope(json.dumps(_good())).type == "event"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b"x" * (protocol.MAX_PAYLOAD_BYTES + 1), "too large"),
        (b"[1, 2]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (json.dumps(_good(v=2)), "unsupported version"),
        (json.dumps(_good(v="1")), "unsupported version"),
        (json.dumps(_without("v")), "unsupported version"),
        (json.dumps(_without("id")), "id"),
        (json.dumps(_good(id="short")), "id"),
        (json.dumps(_good(id="has space in it")), "id"),
        (json.dumps(_good(id="x" * 65)), "id"),
        (json.dumps(_good(id=12345678901)), "id"),
        (json.dumps(_without("ts")), "ts"),
        (json.dumps(_good(ts="yesterday")), "ts"),
        (json.dumps(_good(ts=1700000000)), "ts"),
        (json.dumps(_without("type")), "type"),
        (json.dumps(_good(type="")), "type"),
        (json.dumps(_good(type=3)), "type"),
        (json.dumps(_without("data")), "data"),
        (json.dumps(_good(data=[1])), "data"),
        (json.dumps(_good(data="x")), "data"),
        (json.dumps(_good(data=None)), "data"),
    ],
)
def test_parse_envelope_refuses_bad_payloads(payload: bytes | str, why: str) -> None:
    with pytest.raises(MalformedMessage, match=why):
        parse_envelope(payload)
