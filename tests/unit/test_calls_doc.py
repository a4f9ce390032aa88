"""docs/calls.md says what kiosk/calls/model.py defines, and nothing else.

Every state, end reason, direction, "who ended it", outcome and signalling message of the model
is in the doc's tables, and every row of those tables is in the model; a message's fields in
the doc are fields of the model's message, and its required fields are all in the doc.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from kiosk.calls.model import (
    MESSAGES,
    CallDirection,
    CallState,
    CallWarning,
    Direction,
    EndedBy,
    EndReason,
    Outcome,
    PinError,
    SignalMessage,
    StaffEnd,
    Supervision,
    Wire,
    kinds_on,
)

DOC = (Path(__file__).resolve().parents[2] / "docs" / "calls.md").read_text()
TICKED = re.compile(r"`([^`]+)`")


def table_after(marker: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table from the line that starts with ``marker``
    (a heading or sentence before it, or its own header row)."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(marker))
    rows: list[list[str]] = []
    for line in lines[start:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table after {marker!r}"
    return rows[2:]  # past the header and its rule


def first_column(marker: str) -> set[str]:
    return {TICKED.findall(row[0])[0] for row in table_after(marker) if TICKED.findall(row[0])}


def test_the_states_are_the_models() -> None:
    assert first_column("### States") == {str(s) for s in CallState}


def test_the_end_reasons_are_the_models() -> None:
    assert first_column("### End reasons") == {str(r) for r in EndReason}


def test_the_directions_are_the_models_and_map_as_it_maps_them() -> None:
    pairs = {
        (TICKED.findall(row[0])[0], TICKED.findall(row[1])[0])
        for row in table_after("### Directions")
    }
    assert pairs == {(str(d), str(d.logged)) for d in Direction}
    assert {b for _, b in pairs} == {str(d) for d in CallDirection}


def test_who_ended_a_call_is_the_models() -> None:
    assert first_column("| `calls.ended_by`") == {str(b) for b in EndedBy}
    assert first_column("| `by` of a backend `hangup`") == {str(b) for b in StaffEnd}


def test_the_outcomes_are_the_models() -> None:
    named = first_column("| outcome |")
    assert named == {str(o) for o in Outcome}
    assert any("end reason" in row[0] for row in table_after("| outcome |"))


def test_the_tablets_call_event_fields_are_documented() -> None:
    for vocabulary, field_name in (
        (Supervision, "supervision"),
        (PinError, "pin_error"),
        (CallWarning, "warning"),
    ):
        found = re.search(rf"`{field_name}`\s+\(([^)]*)\)", DOC)
        assert found, field_name
        assert set(TICKED.findall(found.group(1))) == {str(v) for v in vocabulary}


WIRES = {
    Wire.TO_PAGE: "Backend → browser:",
    Wire.FROM_PAGE: "Browser → backend:",
    Wire.TO_TABLET: "Backend → tablet (",
    Wire.FROM_TABLET: "Tablet → backend (",
}
BY_KIND = {m.kind: m for m in MESSAGES}


def documented_fields(cell: str) -> set[str]:
    """The field names of a table's fields cell: ``contact {id, …}`` is ``contact``; what
    follows a dash, or sits in brackets, is prose and values, not fields."""
    cell = cell.split(" — ")[0]
    cell = re.sub(r"\([^)]*\)", "", cell)
    return {token.split()[0] for token in TICKED.findall(cell)}


@pytest.mark.parametrize("wire", list(WIRES), ids=str)
def test_each_wires_table_lists_exactly_the_messages_it_carries(wire: Wire) -> None:
    assert first_column(WIRES[wire]) == kinds_on(wire)


@pytest.mark.parametrize("wire", list(WIRES), ids=str)
def test_each_messages_documented_fields_are_the_models(wire: Wire) -> None:
    for row in table_after(WIRES[wire]):
        kind = TICKED.findall(row[0])[0]
        message: type[SignalMessage] = BY_KIND[kind]
        fields = {f.name: f for f in dataclasses.fields(message)}
        required = {
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        documented = documented_fields(row[1])
        assert documented <= set(fields), (kind, wire, documented - set(fields))
        assert required <= documented, (kind, wire, required - documented)


# -- the family page (backend/static/call.js) speaks the same words ------------------------------

CALL_JS = (Path(__file__).resolve().parents[2] / "backend" / "static" / "call.js").read_text()
# The page's own reason for a camera or microphone it could not open; it sends it as "error".
PAGE_ONLY_REASONS = {"media"}


def test_the_family_page_sends_and_handles_the_models_messages() -> None:
    sent = set(re.findall(r"""send\(\{\s*type:\s*"(\w+)\"""", CALL_JS))
    sent |= set(re.findall(r"""const msg = \{\s*type:\s*"(\w+)\"""", CALL_JS))
    assert sent == kinds_on(Wire.FROM_PAGE)
    switch = CALL_JS[CALL_JS.index("function handle(msg)") :]
    switch = switch[: switch.index("\n}\n")]
    assert set(re.findall(r'case "(\w+)":', switch)) == kinds_on(Wire.TO_PAGE)


def test_the_family_pages_end_sentences_are_for_the_models_reasons() -> None:
    table = CALL_JS[CALL_JS.index("function sentenceFor(") :]
    table = table[table.index("const pick = {") : table.index("};")]
    named = set(re.findall(r"^\s*(\w+):", table, re.MULTILINE))
    assert named - PAGE_ONLY_REASONS <= {str(r) for r in EndReason} | {str(o) for o in Outcome}
    # Every reason an "ended" may carry has its sentence, but "answered_elsewhere": that page
    # only rang, and "the call is over" (the default) is what it shows.
    assert {str(r) for r in EndReason} - named == {EndReason.ANSWERED_ELSEWHERE}


def test_the_family_pages_states_and_directions_are_the_models() -> None:
    states = set(re.findall(r'setState\("(\w+)"\)', CALL_JS))
    # The call's state (an AudioContext's own states are not the call's).
    states |= set(re.findall(r'\b(?:call|ended)\.state [!=]== "(\w+)"', CALL_JS))
    assert states and states <= {str(s) for s in CallState}
    directions = set(re.findall(r'\.direction [!=]?== "(\w+)"', CALL_JS))
    directions |= set(re.findall(r'\.direction = "(\w+)"', CALL_JS))
    assert directions == {str(d) for d in CallDirection}
