"""Supervised calls, the one-minute warning and the ends staff or limits impose, in the engine.

Same harness as ``test_call_engine.py``: the engine in its own thread, an aiortc peer as the
relative's browser, signals through queues. Minutes of ``max_duration_min`` are shortened with
``seconds_per_minute``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.test_call_engine import Browser, Tablet, browser, exchange_sdp  # noqa: F401

SUPERVISED = {
    "id": "c9",
    "approval_id": "a-sup",
    "display_name": "Sophie",
    "policy": {"supervised": True, "auto_answer_s": 1},
}
LIMITED = {
    "id": "c8",
    "approval_id": "a-limit",
    "display_name": "Léo",
    "policy": {"max_duration_min": 2},
}


def make_tablet(**options: Any) -> Tablet:
    t = Tablet(**options)
    assert t.config is not None
    t.config["residents"][0]["contacts"].extend([SUPERVISED, LIMITED])
    return t


@pytest.fixture
def tablet() -> Iterator[Tablet]:
    t = make_tablet(pin_answer_timeout_s=0.5)
    yield t
    t.engine.close()


def no_signal(tablet: Tablet, wait: float = 0.3) -> None:
    time.sleep(wait)
    assert tablet.signals.empty(), tablet.signals.get()


async def test_an_outgoing_supervised_call_dials_only_after_a_right_pin(tablet: Tablet) -> None:
    call_id = tablet.engine.start_call("a-sup")
    event = await tablet.event("supervising")
    assert event["supervised"] is True and event["supervision"] == "required"
    assert event["direction"] == "outgoing" and event["pin_attempts_left"] == 3
    no_signal(tablet)  # nothing leaves the tablet, the relative's page does not ring

    tablet.engine.supervise("1111")
    assert await tablet.signal("supervise") == {
        "kind": "supervise",
        "call_id": call_id,
        "approval_id": "a-sup",
        "pin": "1111",
    }
    assert (await tablet.event("supervising"))["supervision"] == "checking"
    tablet.engine.on_signal(
        {"kind": "supervised", "call_id": call_id, "ok": False, "attempts_left": 2}
    )
    wrong = await tablet.event("supervising")
    assert (wrong["supervision"], wrong["pin_error"], wrong["pin_attempts_left"]) == (
        "required",
        "wrong",
        2,
    )

    tablet.engine.supervise("2468")
    assert (await tablet.signal("supervise"))["pin"] == "2468"
    await tablet.event("supervising")
    tablet.engine.on_signal(
        {"kind": "supervised", "call_id": call_id, "ok": True, "staff_name": "Nadia"}
    )
    dialling = await tablet.event("dialling")
    assert dialling["supervision"] == "ok" and dialling["supervisor"] == "Nadia"
    assert await tablet.signal("invite") == {
        "kind": "invite",
        "call_id": call_id,
        "approval_id": "a-sup",
    }


async def test_an_unanswered_pin_lets_staff_type_it_again(tablet: Tablet) -> None:
    tablet.engine.start_call("a-sup")
    await tablet.event("supervising")
    tablet.engine.supervise("1111")
    await tablet.signal("supervise")
    await tablet.event("supervising")
    again = await tablet.event("supervising", timeout=3)  # no word from the backend
    assert (again["supervision"], again["pin_error"], again["pin_attempts_left"]) == (
        "required",
        "network",
        3,
    )


async def test_an_incoming_supervised_call_never_auto_answers_and_three_wrong_pins_decline(
    tablet: Tablet,
) -> None:
    tablet.invite("call-s", approval_id="a-sup")
    await tablet.signal("ringing")
    incoming = await tablet.event("incoming")
    assert incoming["auto_answer_s"] is None and incoming["supervised"] is True
    no_signal(tablet, 1.5)  # the contact's 1 s auto-answer does not apply

    tablet.engine.answer_call()
    assert (await tablet.event("supervising"))["direction"] == "incoming"
    no_signal(tablet)  # no accept yet
    for left in (2, 1, 0):
        tablet.engine.supervise("0000")
        await tablet.signal("supervise")
        await tablet.event("supervising")
        tablet.engine.on_signal(
            {"kind": "supervised", "call_id": "call-s", "ok": False, "attempts_left": left}
        )
        if left:
            assert (await tablet.event("supervising"))["pin_error"] == "wrong"
    assert await tablet.signal("decline") == {
        "kind": "decline",
        "call_id": "call-s",
        "reason": "policy",
    }
    assert (await tablet.event("ended"))["reason"] == "policy"
    assert tablet.engine.call is None


async def test_an_incoming_supervised_call_is_answered_once_supervised(tablet: Tablet) -> None:
    tablet.invite("call-s2", approval_id="a-sup")
    await tablet.signal("ringing")
    await tablet.event("incoming")
    tablet.engine.answer_call()
    await tablet.event("supervising")
    tablet.engine.supervise("2468")
    await tablet.signal("supervise")
    await tablet.event("supervising")
    tablet.engine.on_signal(
        {"kind": "supervised", "call_id": "call-s2", "ok": True, "staff_name": "Nadia"}
    )
    assert await tablet.signal("accept") == {"kind": "accept", "call_id": "call-s2"}
    assert (await tablet.event("incoming"))["supervisor"] == "Nadia"
    await tablet.event("connecting")


async def test_cancelling_the_keypad_ends_an_outgoing_call_without_a_word_out(
    tablet: Tablet,
) -> None:
    tablet.engine.start_call("a-sup")
    await tablet.event("supervising")
    tablet.engine.hang_up()
    assert (await tablet.event("ended"))["reason"] == "cancelled"
    no_signal(tablet)


async def test_one_minute_warning_then_the_limit_ends_the_call_on_both_sides(
    browser: Browser,  # noqa: F811
) -> None:
    tablet = make_tablet(seconds_per_minute=1.5)  # max_duration_min 2 -> 3 s, warned at 1.5 s
    try:
        tablet.invite("call-l", approval_id="a-limit")
        await tablet.signal("ringing")
        await tablet.event("incoming")
        tablet.engine.answer_call()
        await tablet.signal("accept")
        await tablet.event("connecting")
        await exchange_sdp(tablet, browser, "call-l")
        connected_at = time.monotonic()
        warned = await tablet.event("connected", timeout=5)
        assert warned["warning"] == "one_minute"
        warned_after = time.monotonic() - connected_at
        assert await tablet.signal("hangup", timeout=5) == {
            "kind": "hangup",
            "call_id": "call-l",
            "reason": "policy",
        }
        ended = await tablet.event("ended")
        ended_after = time.monotonic() - connected_at
        assert (ended["reason"], ended["ended_by"], ended["warning"]) == (
            "policy",
            "limit",
            "one_minute",
        )
        print(f"warned after {warned_after:.2f} s, ended after {ended_after:.2f} s")
        assert 0.8 < warned_after < 2.5 and 2.3 < ended_after < 4.5
    finally:
        tablet.engine.close()


async def test_staff_ending_the_call_ends_it_at_once_and_says_so(
    tablet: Tablet,
    browser: Browser,  # noqa: F811
) -> None:
    tablet.invite("call-e")
    await tablet.signal("ringing")
    await tablet.event("incoming")
    tablet.engine.answer_call()
    await tablet.signal("accept")
    await tablet.event("connecting")
    await exchange_sdp(tablet, browser, "call-e")
    at = time.monotonic()
    tablet.engine.on_signal(
        {"kind": "hangup", "call_id": "call-e", "reason": "policy", "by": "staff"}
    )
    ended = await tablet.event("ended")
    assert time.monotonic() - at < 2
    assert (ended["reason"], ended["ended_by"]) == ("policy", "staff")
    no_signal(tablet)  # nothing echoed back


async def test_the_staff_command_ends_the_call_too(tablet: Tablet) -> None:
    call_id = tablet.engine.start_call("a1")
    await tablet.signal("invite")
    await tablet.event("dialling")
    tablet.engine.end_by_staff(call_id)
    assert (await tablet.signal("hangup"))["reason"] == "policy"
    ended = await tablet.event("ended")
    assert (ended["reason"], ended["ended_by"]) == ("policy", "staff")
