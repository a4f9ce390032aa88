"""The one model of a call (kiosk/calls/model.py): parser, serialiser, vocabularies.

The exact dicts below are protocol v1 (docs/calls.md, backend/static/call.js): they must not
change without a new protocol version.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kiosk.calls import model
from kiosk.calls.model import (
    MESSAGES,
    Accept,
    Accepted,
    Answer,
    CallDirection,
    Calling,
    CallState,
    Decline,
    Direction,
    Ended,
    EndReason,
    Hangup,
    Hello,
    Incoming,
    Invite,
    Offer,
    Outcome,
    PlaceCall,
    Refused,
    Ringing,
    SignalError,
    SignalMessage,
    StaffEnd,
    Supervise,
    Supervised,
    Wire,
    kinds_on,
    outcome_for,
    parse_signal,
)

ROOT = Path(__file__).resolve().parents[2]
ICE = ({"urls": ["turn:turn.example:3478"], "username": "u", "credential": "p"},)

# One example of every message, with every optional field set, for the round trips.
EXAMPLES: list[SignalMessage] = [
    Invite(
        call_id="c1",
        approval_id="a1",
        resident_id="r1",
        contact={"id": "k1", "display_name": "Julie"},
        ice_servers=ICE,
    ),
    Invite(call_id="c1", approval_id="a1"),
    Ringing(call_id="c1", ice_servers=ICE),
    Ringing(call_id="c1"),
    Accept(call_id="c1"),
    Accepted(call_id="c1", ice_servers=ICE),
    Decline(call_id="c1", reason=EndReason.BUSY),
    Offer(call_id="c1", sdp="v=0\r\n"),
    Answer(call_id="c1", sdp="v=0\r\n"),
    Hangup(call_id="c1", reason=EndReason.POLICY, by=StaffEnd.LIMIT),
    Hangup(call_id="c1"),
    Supervise(call_id="c1", pin="1234", approval_id="a1"),
    Supervised(call_id="c1", ok=True, staff_name="Anne"),
    Supervised(call_id="c1", ok=False, attempts_left=2),
    PlaceCall(resident_id="r1"),
    Calling(call_id="c1", resident_id="r1"),
    Refused(resident_id="r1", reason="policy", message="Pas maintenant", next=None),
    Incoming(call_id="c1", resident={"id": "r1", "first_name": "Marcel"}),
    Ended(call_id="c1", reason=EndReason.ANSWERED_ELSEWHERE),
    Hello(contact={"id": "k1"}, residents=({"id": "r1"},), ice_servers=ICE, missed=()),
]


@pytest.mark.parametrize(
    ("message", "wire"),
    [(m, w) for m in EXAMPLES for w in sorted(m.wires)],
    ids=lambda v: v.kind if isinstance(v, SignalMessage) else str(v),
)
def test_every_message_round_trips_on_every_wire_it_travels(
    message: SignalMessage, wire: Wire
) -> None:
    data = message.to_wire(wire)
    assert data[wire.key] == message.kind
    assert parse_signal(data, wire=wire) == message


def test_every_message_class_has_an_example() -> None:
    assert {type(m) for m in EXAMPLES} == set(MESSAGES)


def test_the_v1_wire_dicts_are_unchanged() -> None:
    invite = EXAMPLES[0].to_wire(Wire.TO_TABLET)
    assert invite == {
        "kind": "invite",
        "call_id": "c1",
        "approval_id": "a1",
        "resident_id": "r1",
        "contact": {"id": "k1", "display_name": "Julie"},
        "ice_servers": [dict(ICE[0])],
    }
    assert Invite(call_id="c1", approval_id="a1").to_wire(Wire.FROM_TABLET) == {
        "kind": "invite",
        "call_id": "c1",
        "approval_id": "a1",
    }
    assert Hangup(call_id="c1", reason=EndReason.POLICY, by=StaffEnd.STAFF).to_wire(
        Wire.TO_TABLET
    ) == {"kind": "hangup", "call_id": "c1", "reason": "policy", "by": "staff"}
    assert Hangup(call_id="c1", reason=EndReason.HUNG_UP).to_wire(Wire.FROM_TABLET) == {
        "kind": "hangup",
        "call_id": "c1",
        "reason": "hung_up",
    }
    assert Ended(call_id="c1", reason=EndReason.MISSED).to_wire(Wire.TO_PAGE) == {
        "type": "ended",
        "call_id": "c1",
        "reason": "missed",
    }
    # "next" is always there for the page, null when unknown.
    assert Refused(resident_id="r1", reason="busy", message="m").to_wire(Wire.TO_PAGE) == {
        "type": "refused",
        "resident_id": "r1",
        "reason": "busy",
        "message": "m",
        "next": None,
    }
    assert Supervised(call_id="c1", ok=False, attempts_left=0).to_wire(Wire.TO_TABLET) == {
        "kind": "supervised",
        "call_id": "c1",
        "ok": False,
        "attempts_left": 0,
    }
    # What the family page sends (backend/static/call.js) parses as it is.
    assert parse_signal(
        {"type": "decline", "call_id": "c1", "reason": "busy"}, wire=Wire.FROM_PAGE
    ) == Decline(call_id="c1", reason=EndReason.BUSY)
    assert parse_signal({"type": "call", "resident_id": "r1"}, wire=Wire.FROM_PAGE) == PlaceCall(
        resident_id="r1"
    )


@pytest.mark.parametrize(
    ("data", "wire", "says"),
    [
        ([], Wire.TO_TABLET, "must be a JSON object, not list"),
        ({"call_id": "c1"}, Wire.TO_TABLET, "needs a string 'kind'"),
        ({"type": "offer", "call_id": "c1", "sdp": "x"}, Wire.TO_TABLET, "needs a string 'kind'"),
        ({"kind": "dance", "call_id": "c1"}, Wire.FROM_TABLET, "'dance' is not a signal"),
        ({"kind": "offer", "call_id": "c1", "sdp": "x"}, Wire.FROM_TABLET, "'offer' is not a"),
        ({"type": "invite", "call_id": "c1"}, Wire.FROM_PAGE, "'invite' is not a signal"),
        ({"kind": "ringing"}, Wire.TO_TABLET, "'ringing': 'call_id' must be a non-empty"),
        ({"kind": "ringing", "call_id": ""}, Wire.TO_TABLET, "'call_id' must be a non-empty"),
        ({"kind": "ringing", "call_id": "x" * 65}, Wire.TO_TABLET, "at most 64"),
        ({"kind": "ringing", "call_id": 7}, Wire.TO_TABLET, "'call_id' must be"),
        ({"kind": "ringing", "call_id": "c1", "ice_servers": "x"}, Wire.TO_TABLET, "list of"),
        ({"kind": "invite", "call_id": "c1"}, Wire.FROM_TABLET, "'approval_id' must be"),
        ({"kind": "offer", "call_id": "c1"}, Wire.TO_TABLET, "'sdp' must be a non-empty"),
        ({"kind": "offer", "call_id": "c1", "sdp": ""}, Wire.TO_TABLET, "'sdp' must be"),
        (
            {"kind": "offer", "call_id": "c1", "sdp": "v" * (model.MAX_SDP + 1)},
            Wire.TO_TABLET,
            "at most 65536 characters",
        ),
        ({"kind": "supervised", "call_id": "c1", "ok": "yes"}, Wire.TO_TABLET, "'ok' must be"),
        (
            {"kind": "supervised", "call_id": "c1", "ok": False, "attempts_left": -1},
            Wire.TO_TABLET,
            "'attempts_left' must be a non-negative integer",
        ),
        ({"kind": "supervise", "call_id": "c1"}, Wire.FROM_TABLET, "'pin' must be a string"),
        ({"type": "call", "resident_id": ""}, Wire.FROM_PAGE, "'resident_id' must be"),
        ({"type": "ended", "call_id": "c1", "reason": "bored"}, Wire.TO_PAGE, "'reason' must"),
        ({"type": "incoming", "call_id": "c1", "resident": []}, Wire.TO_PAGE, "an object"),
    ],
)
def test_bad_signals_are_refused_with_a_sentence_that_says_what_is_wrong(
    data: Any, wire: Wire, says: str
) -> None:
    with pytest.raises(SignalError) as caught:
        parse_signal(data, wire=wire)
    assert says in str(caught.value)


def test_a_hangup_with_an_unknown_reason_is_still_a_hangup() -> None:
    data = {"kind": "hangup", "call_id": "c1", "reason": "bored", "by": "aliens"}
    assert parse_signal(data, wire=Wire.FROM_TABLET) == Hangup(call_id="c1")
    assert parse_signal({**data, "reason": 3}, wire=Wire.TO_TABLET) == Hangup(call_id="c1")


def test_unknown_fields_are_ignored() -> None:
    data = {"kind": "accept", "call_id": "c1", "later": {"v": 2}}
    assert parse_signal(data, wire=Wire.FROM_TABLET) == Accept(call_id="c1")


def test_a_message_is_not_serialised_on_a_wire_it_does_not_travel() -> None:
    with pytest.raises(ValueError, match="'offer' is not sent on signal/out"):
        Offer(call_id="c1", sdp="v=0").to_wire(Wire.FROM_TABLET)


def test_the_wires_carry_the_kinds_of_docs_calls_md() -> None:
    assert kinds_on(Wire.TO_TABLET) == {
        "invite",
        "ringing",
        "accepted",
        "offer",
        "hangup",
        "supervised",
    }
    assert kinds_on(Wire.FROM_TABLET) == {
        "invite",
        "ringing",
        "accept",
        "decline",
        "answer",
        "hangup",
        "supervise",
    }
    assert kinds_on(Wire.FROM_PAGE) == {"call", "accept", "decline", "offer", "hangup"}
    assert kinds_on(Wire.TO_PAGE) == {
        "hello",
        "calling",
        "refused",
        "ringing",
        "incoming",
        "accepted",
        "answer",
        "ended",
    }


def test_directions_map_one_to_one() -> None:
    assert Direction.OUTGOING.logged is CallDirection.FROM_RESIDENT
    assert Direction.INCOMING.logged is CallDirection.TO_RESIDENT
    for direction in CallDirection:
        assert direction.on_tablet.logged is direction


def test_outcomes() -> None:
    assert outcome_for(EndReason.HUNG_UP, answered=True) == Outcome.COMPLETED
    assert outcome_for(EndReason.CANCELLED, answered=True) == Outcome.COMPLETED
    assert outcome_for(EndReason.CANCELLED, answered=False) == EndReason.CANCELLED
    assert outcome_for(EndReason.NETWORK, answered=True) == EndReason.NETWORK
    # The call log's column is 16 characters.
    assert all(len(v) <= 16 for v in [*Outcome, *EndReason] if v != "answered_elsewhere")


def test_the_model_and_the_hub_import_neither_kivy_nor_aiortc_nor_numpy() -> None:
    code = (
        "import sys, kiosk.calls.model, backend.calls.hub; "
        "heavy = ('kivy', 'kivymd', 'aiortc', 'numpy'); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


# -- no second copy of the vocabulary ------------------------------------------------------------

VOCABULARY = (
    {str(v) for v in CallState}
    | {str(v) for v in EndReason}
    | {str(v) for v in Direction}
    | {str(v) for v in CallDirection}
    | {str(v) for v in StaffEnd}
    | {str(v) for v in model.EndedBy}
    | {str(v) for v in model.Supervision}
    | {m.kind for m in MESSAGES if m is not PlaceCall}  # "call" is also the engine's event name
)
# Same words, other things: aiortc's own connection states in the engine's peer-connection
# watcher, the MQTT link's "connected" event, and the core's ``supervise`` method's name.
ALLOWED = {
    ("kiosk/calls/engine.py", "_watch", "connected"),
    ("screens/app.py", "_on_core_event", "connected"),
    ("screens/app.py", "_on_pin_entered", "supervise"),
}


def _is_a_name(node: ast.Constant, parent: ast.AST | None) -> bool:
    """A field's name rather than a value: ``x.get("policy")``, ``d["supervised"]``, a dict
    key, ``stats.mark("offer")`` (a set-up step), ``type="offer"`` (aiortc's SDP type)."""
    if isinstance(parent, ast.Call) and parent.args and parent.args[0] is node:
        func = parent.func
        return isinstance(func, ast.Attribute) and func.attr in ("get", "mark", "pop")
    if isinstance(parent, ast.Subscript):
        return parent.slice is node
    if isinstance(parent, ast.Dict):
        return any(key is node for key in parent.keys)
    if isinstance(parent, ast.keyword):
        return parent.arg == "type"
    return False


def _raw_literals(path: str) -> list[tuple[int, str, str]]:
    tree = ast.parse((ROOT / path).read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []

    def visit(node: ast.AST, parent: ast.AST | None, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name if function == "" else function
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in VOCABULARY
            and id(node) not in docstrings
            and not _is_a_name(node, parent)
            and (path, function, node.value) not in ALLOWED
        ):
            found.append((node.lineno, function, node.value))
        for child in ast.iter_child_nodes(node):
            visit(child, node, function)

    visit(tree, None, "")
    return found


@pytest.mark.parametrize(
    "path", ["backend/calls/hub.py", "kiosk/calls/engine.py", "screens/app.py"]
)
def test_no_raw_state_reason_direction_or_signal_strings(path: str) -> None:
    assert _raw_literals(path) == []
