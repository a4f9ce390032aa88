"""``Consequences`` (backend/services/decisions.py): what a decision sets in motion, merged."""

from __future__ import annotations

import pytest

from backend.services import decisions
from backend.services.decisions import Consequences, EndCalls


def test_merging_keeps_everything_once() -> None:
    revoke = Consequences(republish=frozenset({"t1", "t2"})) | decisions.end_calls(approval_id="a1")
    regenerate = decisions.end_calls(contact_id="c1") | decisions.close_pages("c1")
    merged = revoke | regenerate | decisions.end_calls(approval_id="a1") | decisions.NOTHING
    assert merged.republish == {"t1", "t2"}
    assert merged.end_calls == (EndCalls(approval_id="a1"), EndCalls(contact_id="c1"))
    assert merged.close_pages == {"c1"}
    assert not merged.empty and decisions.NOTHING.empty


def test_a_retired_tablet_is_not_republished() -> None:
    both = Consequences(republish=frozenset({"t1", "t2"})) | decisions.retired(["t2"])
    assert both.to_publish == ["t1"] and both.retire == {"t2"}
    assert both.summary()["republish"] == ["t1"]


def test_commands_are_kept_in_order_without_duplicates() -> None:
    one = decisions.command(["t2", "t1"], "reset_pin_lock", resident_id="r1")
    assert [c.tablet_id for c in (one | one).commands] == ["t1", "t2"]
    assert dict(one.commands[0].data) == {"resident_id": "r1"}


def test_ending_calls_needs_something_to_match() -> None:
    with pytest.raises(ValueError):
        EndCalls()
    assert EndCalls(call_id="x").filters() == {
        "call_id": "x",
        "approval_id": None,
        "resident_id": None,
        "contact_id": None,
    }
