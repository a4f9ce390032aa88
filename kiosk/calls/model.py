"""One model of a call, shared by the tablet's engine, the backend's hub and the docs.

States, end reasons, directions and the signalling messages of protocol v1 (docs/calls.md) are
defined here once, typed; :func:`parse_signal` is the one parser of a signalling message, on
either wire (MQTT ``signal/in`` / ``signal/out``, whose ``data.kind`` names the message, and the
family page's WebSocket, whose ``type`` does), and :meth:`SignalMessage.to_wire` the one
serialiser. Nothing here imports Kivy, aiortc or numpy: the backend imports this module.

The wire format is version 1's and must not change: a field is written only when it is set, and
``tests/unit/test_call_model.py`` pins the exact dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

_E = TypeVar("_E", bound=StrEnum)

MAX_SDP = 64 * 1024
MAX_CALL_ID = 64  # the call log's primary key (``calls.id``)


class CallState(StrEnum):
    """Where a call is, on every side. ``incoming`` is the tablet's own word for "ringing here";
    ``ringing`` is a call ringing at the other side; ``supervising`` is the tablet's PIN keypad."""

    IDLE = "idle"
    DIALLING = "dialling"
    RINGING = "ringing"
    INCOMING = "incoming"
    SUPERVISING = "supervising"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ENDED = "ended"


# Being set up or under way (the backend's "busy" check, the dashboard's calls).
ACTIVE_STATES = frozenset(
    {CallState.DIALLING, CallState.RINGING, CallState.CONNECTING, CallState.CONNECTED}
)
# Not answered yet: a hang-up now is a cancel, the ring timer may still expire.
RINGING_STATES = frozenset({CallState.DIALLING, CallState.RINGING})
# Answered: a hang-up now is a hang-up.
ANSWERED_STATES = frozenset({CallState.CONNECTING, CallState.CONNECTED})


class EndReason(StrEnum):
    """Why a call ended (``reason`` of ``hangup``, ``decline``, ``ended`` and the tablet's
    ``call_ended`` event)."""

    DECLINED = "declined"
    MISSED = "missed"
    CANCELLED = "cancelled"
    HUNG_UP = "hung_up"
    POLICY = "policy"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    ERROR = "error"
    NETWORK = "network"
    # Only to the family page: another open page of the same relative answered.
    ANSWERED_ELSEWHERE = "answered_elsewhere"


class Outcome(StrEnum):
    """How a call ended, in the call log (``calls.outcome``): an end reason, or one of these."""

    COMPLETED = "completed"  # a connected call was hung up (or cancelled) by either side
    # The backend stopped during the call and no tablet said how it ended (yet).
    SERVER_RESTART = "server_restart"


def as_end_reason(value: Any) -> EndReason | None:
    """``value`` as an end reason, or None when it is not one (from the wire, a stored event)."""
    return _member(EndReason, value)


def as_call_state(value: Any) -> CallState | None:
    """``value`` as a call state, or None (the engine's events, read by the screens)."""
    return _member(CallState, value)


def as_direction(value: Any) -> Direction | None:
    return _member(Direction, value)


def outcome_for(reason: EndReason, *, answered: bool) -> str:
    """The call log's outcome of a call that ended with ``reason``."""
    if answered and reason in (EndReason.HUNG_UP, EndReason.CANCELLED):
        return Outcome.COMPLETED
    return reason


class Direction(StrEnum):
    """Which way a call goes, seen from the tablet (its events, its screens)."""

    OUTGOING = "outgoing"  # the resident calls
    INCOMING = "incoming"  # the resident is called

    @property
    def logged(self) -> CallDirection:
        if self is Direction.OUTGOING:
            return CallDirection.FROM_RESIDENT
        return CallDirection.TO_RESIDENT


class CallDirection(StrEnum):
    """Which way a call goes, in the backend's words (the hub, the call log)."""

    TO_RESIDENT = "to_resident"
    FROM_RESIDENT = "from_resident"

    @property
    def on_tablet(self) -> Direction:
        return Direction.OUTGOING if self is CallDirection.FROM_RESIDENT else Direction.INCOMING


class EndedBy(StrEnum):
    """Which side ended a call, in the call log (``calls.ended_by``)."""

    RESIDENT = "resident"
    CONTACT = "contact"
    BACKEND = "backend"


class StaffEnd(StrEnum):
    """Why the backend ended a call for the resident (``hangup.by``, the event's ``ended_by``)."""

    STAFF = "staff"  # a member of staff ended it, or revoked/suspended the pair
    LIMIT = "limit"  # the policy's maximum duration


class Supervision(StrEnum):
    """Where a supervised call's staff PIN is (the tablet's ``supervision``)."""

    REQUIRED = "required"
    CHECKING = "checking"
    OK = "ok"


class PinError(StrEnum):
    WRONG = "wrong"
    NETWORK = "network"


class CallWarning(StrEnum):
    ONE_MINUTE = "one_minute"


# -- the signalling messages -----------------------------------------------------------------


class SignalError(ValueError):
    """A signalling message that is not one of protocol v1's; the text says what is wrong."""


class Wire(StrEnum):
    """Where a message travels, and so which kinds it may be and which key names it."""

    TO_TABLET = "signal/in"  # backend -> tablet, MQTT, ``data.kind``
    FROM_TABLET = "signal/out"  # tablet -> backend, MQTT, ``data.kind``
    TO_PAGE = "ws/out"  # backend -> family page, WebSocket, ``type``
    FROM_PAGE = "ws/in"  # family page -> backend, WebSocket, ``type``

    @property
    def key(self) -> str:
        return "kind" if self in (Wire.TO_TABLET, Wire.FROM_TABLET) else "type"


@dataclass(frozen=True)
class SignalMessage:
    """One signalling message; subclasses are protocol v1's messages (docs/calls.md)."""

    kind: ClassVar[str]
    wires: ClassVar[frozenset[Wire]]

    def to_wire(self, wire: Wire) -> dict[str, Any]:
        """The message as a JSON object for ``wire``; fields that are not set are left out."""
        if wire not in self.wires:
            raise ValueError(f"{self.kind!r} is not sent on {wire}")
        out: dict[str, Any] = {wire.key: self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = _plain(value)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


_ALL_MQTT = frozenset({Wire.TO_TABLET, Wire.FROM_TABLET})


@dataclass(frozen=True)
class Invite(SignalMessage):
    """Ring the other side: the backend invites a tablet, or a tablet asks the backend."""

    kind: ClassVar[str] = "invite"
    wires: ClassVar[frozenset[Wire]] = _ALL_MQTT
    call_id: str
    approval_id: str
    resident_id: str | None = None  # backend -> tablet
    contact: Mapping[str, Any] | None = None  # backend -> tablet: {id, display_name}
    ice_servers: tuple[Mapping[str, Any], ...] | None = None  # backend -> tablet


@dataclass(frozen=True)
class Ringing(SignalMessage):
    kind: ClassVar[str] = "ringing"
    wires: ClassVar[frozenset[Wire]] = frozenset({*_ALL_MQTT, Wire.TO_PAGE})
    call_id: str
    ice_servers: tuple[Mapping[str, Any], ...] | None = None  # backend -> tablet


@dataclass(frozen=True)
class Accept(SignalMessage):
    """The callee answers (the tablet, or the family page)."""

    kind: ClassVar[str] = "accept"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.FROM_TABLET, Wire.FROM_PAGE})
    call_id: str


@dataclass(frozen=True)
class Accepted(SignalMessage):
    """The callee answered: told to the caller (the family page then offers)."""

    kind: ClassVar[str] = "accepted"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.TO_TABLET, Wire.TO_PAGE})
    call_id: str
    ice_servers: tuple[Mapping[str, Any], ...] | None = None  # backend -> tablet


@dataclass(frozen=True)
class Decline(SignalMessage):
    kind: ClassVar[str] = "decline"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.FROM_TABLET, Wire.FROM_PAGE})
    call_id: str
    reason: EndReason | None = None


@dataclass(frozen=True)
class Offer(SignalMessage):
    """The family page's complete SDP offer (the browser always offers)."""

    kind: ClassVar[str] = "offer"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.TO_TABLET, Wire.FROM_PAGE})
    call_id: str
    sdp: str


@dataclass(frozen=True)
class Answer(SignalMessage):
    """The tablet's complete SDP answer (aiortc answers)."""

    kind: ClassVar[str] = "answer"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.FROM_TABLET, Wire.TO_PAGE})
    call_id: str
    sdp: str


@dataclass(frozen=True)
class Hangup(SignalMessage):
    """End (or cancel) a call. ``by`` says why the backend ended it for the resident."""

    kind: ClassVar[str] = "hangup"
    wires: ClassVar[frozenset[Wire]] = frozenset({*_ALL_MQTT, Wire.FROM_PAGE})
    call_id: str
    reason: EndReason | None = None
    by: StaffEnd | None = None  # backend -> tablet


@dataclass(frozen=True)
class Supervise(SignalMessage):
    """A member of staff typed their PIN on the tablet for this call."""

    kind: ClassVar[str] = "supervise"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.FROM_TABLET})
    call_id: str
    pin: str
    approval_id: str | None = None


@dataclass(frozen=True)
class Supervised(SignalMessage):
    """The backend's word on a typed PIN."""

    kind: ClassVar[str] = "supervised"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.TO_TABLET})
    call_id: str
    ok: bool
    staff_name: str | None = None  # when ok
    attempts_left: int | None = None  # when not


@dataclass(frozen=True)
class PlaceCall(SignalMessage):
    """The family page calls a resident (``type: "call"``)."""

    kind: ClassVar[str] = "call"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.FROM_PAGE})
    resident_id: str


@dataclass(frozen=True)
class Calling(SignalMessage):
    kind: ClassVar[str] = "calling"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.TO_PAGE})
    call_id: str
    resident_id: str


@dataclass(frozen=True)
class Refused(SignalMessage):
    """The page's ``call`` was not relayed: a sentence and the next allowed moment."""

    kind: ClassVar[str] = "refused"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.TO_PAGE})
    resident_id: str
    reason: str  # an end reason, or a check's detail
    message: str
    next: str | None = field(default=None)

    def to_wire(self, wire: Wire) -> dict[str, Any]:
        return {**super().to_wire(wire), "next": self.next}  # always present, null when unknown


@dataclass(frozen=True)
class Incoming(SignalMessage):
    """A tablet calls the page's relative: ring."""

    kind: ClassVar[str] = "incoming"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.TO_PAGE})
    call_id: str
    resident: Mapping[str, Any]  # {id, first_name}


@dataclass(frozen=True)
class Ended(SignalMessage):
    kind: ClassVar[str] = "ended"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.TO_PAGE})
    call_id: str
    reason: EndReason


@dataclass(frozen=True)
class Hello(SignalMessage):
    """Who the page is, which residents it may call now, its ICE servers, its missed calls."""

    kind: ClassVar[str] = "hello"
    wires: ClassVar[frozenset[Wire]] = frozenset({Wire.TO_PAGE})
    contact: Mapping[str, Any]
    residents: tuple[Mapping[str, Any], ...]
    ice_servers: tuple[Mapping[str, Any], ...]
    missed: tuple[Mapping[str, Any], ...]


MESSAGES: tuple[type[SignalMessage], ...] = (
    Invite,
    Ringing,
    Accept,
    Accepted,
    Decline,
    Offer,
    Answer,
    Hangup,
    Supervise,
    Supervised,
    PlaceCall,
    Calling,
    Refused,
    Incoming,
    Ended,
    Hello,
)


def kinds_on(wire: Wire) -> frozenset[str]:
    """The message kinds (``kind`` or ``type``) that travel on ``wire``."""
    return frozenset(m.kind for m in MESSAGES if wire in m.wires)


_BY_KIND: dict[tuple[Wire, str], type[SignalMessage]] = {
    (wire, m.kind): m for m in MESSAGES for wire in m.wires
}


# -- the parser --------------------------------------------------------------------------------


def parse_signal(data: Any, *, wire: Wire = Wire.TO_TABLET) -> SignalMessage:
    """The message ``data`` is on ``wire``; :class:`SignalError` says what is wrong otherwise.

    Unknown keys are ignored (protocol v1 may gain optional fields). A ``reason`` outside
    :class:`EndReason` on a ``hangup`` or ``decline`` (or a ``by`` outside :class:`StaffEnd`)
    is read as absent, never refused: the receiver then picks the reason from the call's
    state, so that a hang-up is never lost.
    """
    if not isinstance(data, Mapping):
        raise SignalError(f"a signal must be a JSON object, not {type(data).__name__}")
    name = data.get(wire.key)
    if not isinstance(name, str) or not name:
        raise SignalError(f"a signal on {wire} needs a string {wire.key!r}")
    cls = _BY_KIND.get((wire, name))
    if cls is None:
        known = ", ".join(sorted(kinds_on(wire)))
        raise SignalError(f"{name!r} is not a signal on {wire} (one of: {known})")
    reader = _Reader(name, data)
    if cls is Invite:
        return Invite(
            call_id=reader.call_id(),
            approval_id=reader.text("approval_id"),
            resident_id=reader.text("resident_id", required=False),
            contact=reader.obj("contact", required=False),
            ice_servers=reader.ice_servers(),
        )
    if cls is Ringing:
        return Ringing(call_id=reader.call_id(), ice_servers=reader.ice_servers())
    if cls is Accept:
        return Accept(call_id=reader.call_id())
    if cls is Accepted:
        return Accepted(call_id=reader.call_id(), ice_servers=reader.ice_servers())
    if cls is Decline:
        return Decline(call_id=reader.call_id(), reason=reader.reason())
    if cls is Offer:
        return Offer(call_id=reader.call_id(), sdp=reader.sdp())
    if cls is Answer:
        return Answer(call_id=reader.call_id(), sdp=reader.sdp())
    if cls is Hangup:
        return Hangup(
            call_id=reader.call_id(),
            reason=reader.reason(),
            by=_member(StaffEnd, data.get("by")),
        )
    if cls is Supervise:
        return Supervise(
            call_id=reader.call_id(),
            pin=reader.text("pin", allow_empty=True),
            approval_id=reader.text("approval_id", required=False),
        )
    if cls is Supervised:
        ok = data.get("ok")
        if not isinstance(ok, bool):
            raise SignalError(f"{name!r}: 'ok' must be true or false")
        return Supervised(
            call_id=reader.call_id(),
            ok=ok,
            staff_name=reader.text("staff_name", required=False, allow_empty=True),
            attempts_left=reader.count("attempts_left"),
        )
    if cls is PlaceCall:
        return PlaceCall(resident_id=reader.text("resident_id"))
    if cls is Calling:
        return Calling(call_id=reader.call_id(), resident_id=reader.text("resident_id"))
    if cls is Refused:
        return Refused(
            resident_id=reader.text("resident_id"),
            reason=reader.text("reason"),
            message=reader.text("message", allow_empty=True),
            next=reader.text("next", required=False),
        )
    if cls is Incoming:
        return Incoming(call_id=reader.call_id(), resident=reader.obj("resident"))
    if cls is Ended:
        reason = reader.reason()
        if reason is None:
            raise SignalError(f"{name!r}: 'reason' must be one of {sorted(EndReason)}")
        return Ended(call_id=reader.call_id(), reason=reason)
    assert cls is Hello
    return Hello(
        contact=reader.obj("contact"),
        residents=reader.objects("residents"),
        ice_servers=reader.objects("ice_servers"),
        missed=reader.objects("missed"),
    )


def _member(enum: type[_E], value: Any) -> _E | None:
    """``value`` as a member of ``enum``, or None when it is not one."""
    if isinstance(value, str):
        for member in enum:
            if member.value == value:
                return member
    return None


class _Reader:
    """Reads one message's fields, with errors that name the message and the field."""

    def __init__(self, name: str, data: Mapping[str, Any]) -> None:
        self.name = name
        self.data = data

    def _fail(self, what: str) -> SignalError:
        return SignalError(f"{self.name!r}: {what}")

    def call_id(self) -> str:
        value = self.data.get("call_id")
        if not isinstance(value, str) or not value or len(value) > MAX_CALL_ID:
            raise self._fail(f"'call_id' must be a non-empty string of at most {MAX_CALL_ID}")
        return value

    def text(self, key: str, *, required: bool = True, allow_empty: bool = False) -> Any:
        value = self.data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (not value and not allow_empty):
            raise self._fail(f"{key!r} must be a {'' if allow_empty else 'non-empty '}string")
        return value

    def sdp(self) -> str:
        value = self.data.get("sdp")
        if not isinstance(value, str) or not value or len(value) > MAX_SDP:
            raise self._fail(f"'sdp' must be a non-empty string of at most {MAX_SDP} characters")
        return value

    def reason(self) -> EndReason | None:
        return _member(EndReason, self.data.get("reason"))

    def count(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._fail(f"{key!r} must be a non-negative integer")
        return value

    def obj(self, key: str, *, required: bool = True) -> Any:
        value = self.data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, Mapping):
            raise self._fail(f"{key!r} must be an object")
        return dict(value)

    def objects(self, key: str) -> tuple[Mapping[str, Any], ...]:
        value = self.data.get(key)
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self._fail(f"{key!r} must be a list of objects")
        return tuple(dict(v) for v in value)

    def ice_servers(self) -> tuple[Mapping[str, Any], ...] | None:
        if self.data.get("ice_servers") is None:
            return None
        return self.objects("ice_servers")
