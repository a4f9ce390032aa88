"""Who is using the tablet: PINs, lock-out, staff reset, inactivity (fake clock, no Kivy)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from kiosk.session import (
    LOCKOUT_SECONDS,
    MAX_FAILURES,
    Session,
    may_open_without_pin,
    skips_picker,
    verify_pin,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def pin_hash() -> str:
    return PasswordHasher().hash("2580")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def session(clock: FakeClock) -> Session:
    return Session(clock=clock)


def test_right_pin_opens_the_home(session: Session, pin_hash: str) -> None:
    check = session.check_pin("y1", pin_hash, "2580")
    assert check.result == "ok"
    assert session.resident_id == "y1"


def test_wrong_pin_counts_down_then_a_right_one_starts_again(
    session: Session, pin_hash: str
) -> None:
    assert session.check_pin("y1", pin_hash, "1111").attempts_left == MAX_FAILURES - 1
    check = session.check_pin("y1", pin_hash, "2222")
    assert (check.result, check.attempts_left) == ("wrong", MAX_FAILURES - 2)
    assert session.resident_id is None
    assert session.check_pin("y1", pin_hash, "2580").result == "ok"
    assert session.attempts_left("y1") == MAX_FAILURES


def test_five_wrong_pins_lock_for_fifteen_minutes(
    session: Session, clock: FakeClock, pin_hash: str
) -> None:
    for _ in range(MAX_FAILURES - 1):
        assert session.check_pin("y1", pin_hash, "0000").result == "wrong"
    check = session.check_pin("y1", pin_hash, "0000")
    assert check.result == "locked" and check.locked_seconds == LOCKOUT_SECONDS == 900
    # Even the right PIN is refused while locked.
    clock.now += 60
    check = session.check_pin("y1", pin_hash, "2580")
    assert check.result == "locked" and check.locked_seconds == pytest.approx(840)
    assert session.resident_id is None
    # Another child is not locked by it.
    assert session.attempts_left("y2") == MAX_FAILURES
    clock.now += 840
    assert session.locked_seconds("y1") == 0
    assert session.check_pin("y1", pin_hash, "2580").result == "ok"


def test_staff_reset_clears_a_lock_out(session: Session, pin_hash: str) -> None:
    for _ in range(MAX_FAILURES):
        session.check_pin("y1", pin_hash, "9999")
    assert session.locked_seconds("y1") > 0
    session.reset_lock("y1")
    assert session.attempts_left("y1") == MAX_FAILURES
    assert session.check_pin("y1", pin_hash, "2580").result == "ok"


def test_reset_of_everyone(session: Session, pin_hash: str) -> None:
    for rid in ("y1", "y2"):
        for _ in range(MAX_FAILURES):
            session.check_pin(rid, pin_hash, "9999")
    session.reset_lock()
    assert session.locked_seconds("y1") == session.locked_seconds("y2") == 0


def test_a_youth_without_a_pin_cannot_be_opened_by_a_pin(session: Session) -> None:
    assert session.check_pin("y1", "", "0000").result == "no_pin"
    assert session.resident_id is None


@pytest.mark.parametrize("pin", ["", "123", "12345", "abcd", "2580 "])
def test_malformed_pins_and_hashes_never_match(pin: str, pin_hash: str) -> None:
    assert not verify_pin(pin_hash, pin)
    assert not verify_pin("not a hash", "2580")
    assert not verify_pin("", "2580")


def test_inactivity_closes_after_the_configured_time(clock: FakeClock) -> None:
    session = Session(idle_seconds=2, clock=clock)
    assert not session.idle_expired()  # nobody is on: nothing to close
    session.open("s1")
    clock.now += 1.5
    assert not session.idle_expired()
    session.touch()
    clock.now += 1.9
    assert not session.idle_expired()
    clock.now += 0.1
    assert session.idle_expired()
    session.close()
    assert session.resident_id is None and not session.idle_expired()


def test_default_inactivity_is_two_minutes(session: Session, clock: FakeClock) -> None:
    session.open("s1")
    clock.now += 119
    assert not session.idle_expired()
    clock.now += 1
    assert session.idle_expired()


def test_who_needs_the_picker_and_a_pin() -> None:
    senior = {"id": "s1", "kind": "senior"}
    youth = {"id": "y1", "kind": "youth", "pin_hash": "$argon2id$..."}
    youth_no_pin = {"id": "y2", "kind": "youth"}
    assert skips_picker([senior]) and skips_picker([youth])
    assert not skips_picker([senior, youth])
    assert may_open_without_pin(senior, [senior, youth])
    assert not may_open_without_pin(youth, [youth])
    # No PIN set: alone on the tablet, nobody to hide from; shared, ask an educator.
    assert may_open_without_pin(youth_no_pin, [youth_no_pin])
    assert not may_open_without_pin(youth_no_pin, [youth_no_pin, senior])
