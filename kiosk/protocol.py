"""The Liens MQTT protocol, version 1: topic grammar, envelopes and who may use which topic.

Every topic and payload of ``docs/protocol.md`` is built and parsed here, and only here, so the
tablet, the backend and the broker's ACLs (``backend/broker/dynsec.py``) agree by construction.

Topics are ``liens/v1/tablets/{tid}/{channel}`` with channel one of ``config``, ``status``,
``events``, ``signal/in``, ``signal/out``, ``cmd``. Payloads are JSON objects
``{"v": 1, "id": "<uuid>", "ts": "<ISO 8601>", "type": "...", "data": {...}}``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

PROTOCOL_VERSION = 1
PREFIX = "liens/v1"
TABLETS = f"{PREFIX}/tablets"

# Tablet ids appear in topics and broker user names: keep them to a safe alphabet so that no
# id can contain an MQTT wildcard or a level separator.
TABLET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,63}$")
# Envelope ids are the deduplication key of the whole system: accept any reasonable token.
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
MAX_PAYLOAD_BYTES = 256 * 1024


class Channel(StrEnum):
    """The last levels of a tablet topic."""

    CONFIG = "config"
    STATUS = "status"
    EVENTS = "events"
    SIGNAL_IN = "signal/in"
    SIGNAL_OUT = "signal/out"
    CMD = "cmd"


# What a tablet may do on its own topics. It reads what the backend sends (config, signalling to
# it, commands) and writes what it reports; it can never write its own configuration.
TABLET_PUBLISHES = frozenset({Channel.STATUS, Channel.EVENTS, Channel.SIGNAL_OUT})
TABLET_SUBSCRIBES = frozenset({Channel.CONFIG, Channel.SIGNAL_IN, Channel.CMD})

# QoS and retain flag of each channel, as the design fixes them.
RETAINED = frozenset({Channel.CONFIG, Channel.STATUS})
QOS = 1


def is_valid_tablet_id(tablet_id: str) -> bool:
    """True when ``tablet_id`` can be used in a topic and as a broker user name."""
    return bool(TABLET_ID_RE.match(tablet_id))


def topic(tablet_id: str, channel: Channel) -> str:
    """The topic of ``channel`` for one tablet."""
    if not is_valid_tablet_id(tablet_id):
        raise ValueError(f"invalid tablet id: {tablet_id!r}")
    return f"{TABLETS}/{tablet_id}/{channel.value}"


def subscription(channel: Channel) -> str:
    """The backend's wildcard subscription to ``channel`` of every tablet."""
    return f"{TABLETS}/+/{channel.value}"


@dataclass(frozen=True)
class TabletTopic:
    """A parsed tablet topic."""

    tablet_id: str
    channel: Channel


def parse_topic(name: str) -> TabletTopic | None:
    """Parse a concrete topic name; ``None`` when it is not a Liens v1 tablet topic."""
    head = TABLETS + "/"
    if not name.startswith(head):
        return None
    rest = name[len(head) :]
    tablet_id, sep, channel_name = rest.partition("/")
    if not sep or not is_valid_tablet_id(tablet_id):
        return None
    try:
        channel = Channel(channel_name)
    except ValueError:
        return None
    return TabletTopic(tablet_id, channel)


class MessageType(StrEnum):
    """Envelope ``type`` values of version 1."""

    CONFIG = "config"
    STATUS = "status"
    EVENT = "event"
    COMMAND = "command"
    SIGNAL = "signal"


@dataclass(frozen=True)
class Envelope:
    """One message of the protocol."""

    type: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: str = field(default_factory=lambda: now_iso())
    v: int = PROTOCOL_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {"v": self.v, "id": self.id, "ts": self.ts, "type": self.type, "data": self.data},
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def to_bytes(self) -> bytes:
        return self.to_json().encode("utf-8")


class MalformedMessage(ValueError):
    """A payload that is not a valid version-1 envelope; the message says why."""


def now_iso() -> str:
    """The current time as ISO 8601 in UTC, with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_envelope(payload: bytes | str) -> Envelope:
    """Parse and validate a payload; raise :class:`MalformedMessage` saying what is wrong."""
    if isinstance(payload, bytes):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise MalformedMessage(f"payload too large ({len(payload)} bytes)")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("payload is not UTF-8") from exc
    else:
        text = payload
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MalformedMessage(f"payload is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedMessage("payload is not a JSON object")
    if obj.get("v") != PROTOCOL_VERSION:
        raise MalformedMessage(f"unsupported version {obj.get('v')!r}")
    msg_id, ts, msg_type, data = obj.get("id"), obj.get("ts"), obj.get("type"), obj.get("data")
    if not isinstance(msg_id, str) or not EVENT_ID_RE.match(msg_id):
        raise MalformedMessage("missing or invalid id")
    if not isinstance(ts, str) or not _is_iso(ts):
        raise MalformedMessage("missing or invalid ts")
    if not isinstance(msg_type, str) or not msg_type:
        raise MalformedMessage("missing type")
    if not isinstance(data, dict):
        raise MalformedMessage("data is not an object")
    return Envelope(type=msg_type, data=data, id=msg_id, ts=ts)


def _is_iso(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def status_payload(online: bool, *, app_version: str, session: str = "") -> bytes:
    """The retained ``status`` message (also used as the last will, with ``online=False``).

    ``session`` names one run of the tablet's link: its ``online`` and its last will carry the
    same one, so that the will of an earlier run, delivered late (a broker sends it when it
    notices the old connection is gone, possibly after the new run said ``online``), is told
    apart from the current run going offline.
    """
    data: dict[str, Any] = {"state": "online" if online else "offline", "app_version": app_version}
    if session:
        data["session"] = session
    return Envelope(type=MessageType.STATUS, data=data).to_bytes()


def parse_status(envelope: Envelope) -> bool:
    """True for an ``online`` status, False for ``offline``; raise on anything else."""
    if envelope.type != MessageType.STATUS:
        raise MalformedMessage(f"expected a status, got {envelope.type!r}")
    state = envelope.data.get("state")
    if state not in ("online", "offline"):
        raise MalformedMessage(f"invalid status state {state!r}")
    return bool(state == "online")
