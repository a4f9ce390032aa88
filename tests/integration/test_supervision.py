"""Supervised calls, call limits and staff ends through the real backend.

A family page's WebSocket and a fake tablet over MQTT (``test_signalling.FakeTablet``): the hub
checks the staff PIN typed on the tablet, records who supervised, refuses to relay an accept of a
supervised call nobody supervised, ends a call at its maximum duration if the tablet does not,
and tells the tablet when staff ended a call. Also: a revoked or suspended pair is never allowed,
whatever its policy and the time (hypothesis, over the real database).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from backend.auth import accounts
from backend.calls import checks
from backend.calls.hub import CallHub
from backend.models import Approval, ApprovalStatus, AuditEntry, Call, Contact, Tablet
from backend.services import directory
from backend.services import tablets as tablet_service
from kiosk.calls.engine import find_approval
from tests.helpers import RunningBackend
from tests.integration.test_signalling import FakeTablet, Page
from tests.unit.test_policy_properties import policies

PIN = "2468"
OTHER_HOME_PIN = "1357"


def hub_of(backend: RunningBackend) -> CallHub:
    bridge = backend.backend.bridge
    assert bridge is not None
    for handler in bridge.signal_handlers:
        owner = getattr(handler, "__self__", None)
        if isinstance(owner, CallHub):
            return owner
    raise AssertionError("no hub attached")


@pytest.fixture
def setup(backend: RunningBackend) -> Iterator[dict[str, Any]]:
    ids = backend.seed(contacts=2)
    resident = ids["residents"][0]
    backend.approve(resident, ids["contacts"][0], policy={"supervised": True})
    backend.approve(resident, ids["contacts"][1], policy={"max_duration_min": 1})
    with backend.db.session() as s:
        home_id = s.get(Tablet, ids["tablet"]).home_id
        nadia = accounts.add_staff(
            session=s,
            email="nadia@example.org",
            name="Nadia",
            password="a long enough password",
            home_ids=[home_id],
            by="test",
        )
        accounts.set_pin(session=s, staff=nadia, pin=PIN, by="test")
        other_home = directory.add_home(session=s, name="Les Mimosas", by="test")
        stranger = accounts.add_staff(
            session=s,
            email="other@example.org",
            name="Other",
            password="a long enough password",
            home_ids=[other_home.id],
            by="test",
        )
        accounts.set_pin(session=s, staff=stranger, pin=OTHER_HOME_PIN, by="test")
        s.flush()
        nadia_id = nadia.id
    tablet = FakeTablet(backend, ids["tablet"])
    try:
        yield {**ids, "resident": resident, "fake_tablet": tablet, "nadia": nadia_id}
    finally:
        tablet.close()


def ended_row(backend: RunningBackend, call_id: str) -> Call:
    deadline = time.monotonic() + 3
    while True:
        with backend.db.session() as s:
            call = s.get(Call, call_id)
            if call is not None and call.end_at is not None:
                s.expunge(call)
                return call
        assert time.monotonic() < deadline, f"call {call_id} never ended in the log"
        time.sleep(0.05)


def ring(page: Page, tablet: FakeTablet, resident: str) -> str:
    page.send(type="call", resident_id=resident)
    call_id = page.expect("calling")["call_id"]
    assert tablet.expect("invite")["call_id"] == call_id
    tablet.send(kind="ringing", call_id=call_id)
    page.expect("ringing")
    return call_id


def test_an_unsupervised_accept_is_not_relayed(backend: RunningBackend, setup: dict) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][0])
    call_id = ring(page, tablet, setup["resident"])
    tablet.send(kind="accept", call_id=call_id)
    assert page.expect("ended")["reason"] == "policy"  # never "accepted"
    assert ended_row(backend, call_id).outcome == "policy"


def test_staff_of_the_home_supervise_an_incoming_call(backend: RunningBackend, setup: dict) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][0])
    call_id = ring(page, tablet, setup["resident"])

    started = time.monotonic()
    tablet.send(kind="supervise", call_id=call_id, pin=OTHER_HOME_PIN)
    refused = tablet.expect("supervised")
    print(f"PIN checked in {time.monotonic() - started:.3f} s")
    assert refused == {"kind": "supervised", "call_id": call_id, "ok": False, "attempts_left": 2}
    tablet.send(kind="supervise", call_id=call_id, pin=PIN)
    assert tablet.expect("supervised") == {
        "kind": "supervised",
        "call_id": call_id,
        "ok": True,
        "staff_name": "Nadia",
    }
    tablet.send(kind="accept", call_id=call_id)
    page.expect("accepted")
    page.send(type="hangup", call_id=call_id)
    page.expect("ended")
    row = ended_row(backend, call_id)
    assert row.supervised_by == setup["nadia"]
    with backend.db.session() as s:
        actions = [
            (e.action, e.actor)
            for e in s.scalars(
                select(AuditEntry).where(AuditEntry.target_id == call_id).order_by(AuditEntry.id)
            )
        ]
    assert actions == [
        ("call.supervision_refused", f"tablet:{setup['tablet']}"),
        ("call.supervised", "staff:nadia@example.org"),
    ]


def test_three_wrong_pins_and_the_right_one_is_refused_too(
    backend: RunningBackend, setup: dict
) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][0])
    call_id = ring(page, tablet, setup["resident"])
    for left in (2, 1, 0):
        tablet.send(kind="supervise", call_id=call_id, pin="0000")
        assert tablet.expect("supervised")["attempts_left"] == left
    tablet.send(kind="supervise", call_id=call_id, pin=PIN)
    assert tablet.expect("supervised") == {
        "kind": "supervised",
        "call_id": call_id,
        "ok": False,
        "attempts_left": 0,
    }
    tablet.send(kind="decline", call_id=call_id, reason="policy")
    assert page.expect("ended")["reason"] == "policy"


def test_an_outgoing_supervised_call_needs_the_pin_before_its_invite(
    backend: RunningBackend, setup: dict
) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][0])
    with backend.db.session() as s:
        approval_id = s.scalars(
            select(Approval.id).where(Approval.contact_id == setup["contacts"][0])
        ).one()
    tablet.send(kind="invite", call_id="c" * 32, approval_id=approval_id)
    assert tablet.expect("hangup") == {"kind": "hangup", "call_id": "c" * 32, "reason": "policy"}

    call_id = "d" * 32
    tablet.send(kind="supervise", call_id=call_id, approval_id=approval_id, pin=PIN)
    assert tablet.expect("supervised")["ok"] is True
    tablet.send(kind="invite", call_id=call_id, approval_id=approval_id)
    assert page.expect("incoming")["call_id"] == call_id
    page.send(type="accept", call_id=call_id)
    assert tablet.expect("accepted")["call_id"] == call_id
    tablet.send(kind="hangup", call_id=call_id, reason="hung_up")
    page.expect("ended")
    assert ended_row(backend, call_id).supervised_by == setup["nadia"]


def connect(page: Page, tablet: FakeTablet, call_id: str) -> None:
    tablet.send(kind="accept", call_id=call_id)
    page.expect("accepted")
    page.send(type="offer", call_id=call_id, sdp="v=0 offer")
    tablet.expect("offer")
    tablet.send(kind="answer", call_id=call_id, sdp="v=0 answer")
    page.expect("answer")


def test_the_backend_ends_a_call_the_tablet_let_run_past_its_limit(
    backend: RunningBackend, setup: dict
) -> None:
    hub = hub_of(backend)
    hub.seconds_per_minute, hub.max_duration_grace_s = 1.0, 0.5  # max_duration_min 1 -> 1.5 s
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][1])
    call_id = ring(page, tablet, setup["resident"])
    connect(page, tablet, call_id)
    connected = time.monotonic()
    hangup = tablet.expect("hangup")
    assert hangup == {"kind": "hangup", "call_id": call_id, "reason": "policy", "by": "limit"}
    assert page.expect("ended")["reason"] == "policy"
    print(f"ended by the backend {time.monotonic() - connected:.2f} s after the answer")
    assert ended_row(backend, call_id).outcome == "policy"


def test_the_tablets_policy_hangup_ends_the_relatives_side(
    backend: RunningBackend, setup: dict
) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][1])
    call_id = ring(page, tablet, setup["resident"])
    connect(page, tablet, call_id)
    tablet.send(kind="hangup", call_id=call_id, reason="policy")
    assert page.expect("ended") == {
        "type": "ended",
        "call_id": call_id,
        "reason": "policy",
    }
    row = ended_row(backend, call_id)
    assert (row.outcome, row.ended_by) == ("policy", "resident")


def test_staff_ending_a_call_tells_the_tablet_it_was_staff(
    backend: RunningBackend, setup: dict
) -> None:
    tablet: FakeTablet = setup["fake_tablet"]
    page = Page(backend, setup["tokens"][1])
    call_id = ring(page, tablet, setup["resident"])
    connect(page, tablet, call_id)
    assert hub_of(backend).end_calls_threadsafe(call_id=call_id) == 1
    assert tablet.expect("hangup") == {
        "kind": "hangup",
        "call_id": call_id,
        "reason": "policy",
        "by": "staff",
    }
    assert page.expect("ended")["reason"] == "policy"


# -- a revoked pair is never allowed ------------------------------------------------------------

statuses = st.sampled_from(
    [ApprovalStatus.REVOKED.value, ApprovalStatus.SUSPENDED.value, ApprovalStatus.APPROVED.value]
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    policy=policies,
    status=statuses,
    link_active=st.booleans(),
    minutes=st.integers(0, 60 * 24 * 365 * 3),
)
def test_a_revoked_or_suspended_pair_is_never_allowed(
    backend: RunningBackend,
    policy: dict[str, Any],
    status: str,
    link_active: bool,
    minutes: int,
) -> None:
    """Whatever the policy and the moment: the backend refuses, and the tablet's configuration
    does not even list the pair, so the tablet refuses too."""
    with backend.db.session() as s:
        if not s.scalars(select(Approval)).first():
            ids = backend.seed(contacts=1)
            backend.approve(ids["residents"][0], ids["contacts"][0])
        approval = s.scalars(select(Approval)).one()
        approval.status, approval.policy = status, policy
        s.get(Contact, approval.contact_id).link_active = link_active
        s.flush()
        now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
        verdict = checks.check_pair(s, approval.resident_id, approval.contact_id, now)
        tablet = s.scalars(select(Tablet)).one()
        config = tablet_service.build_config(s, tablet)
        listed = find_approval(config, approval.id) is not None
        usable = status == ApprovalStatus.APPROVED.value and link_active
        if not usable:
            assert not verdict.allowed and verdict.detail == "not_approved"
            assert not listed
        else:
            assert listed
        s.rollback()
