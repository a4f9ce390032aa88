"""screens.loop.WaitingLoop: Kivy's loop sleeps until a clock event, input, or the frame cap."""

from __future__ import annotations

import math

import pytest

from screens import loop


class FakeClock:
    """What WaitingLoop reads of Kivy's clock, on a time that only moves when someone waits."""

    def __init__(self, *, fps: float = 30.0, next_event: float = math.inf) -> None:
        self.now = 100.0
        self._max_fps = fps
        self._last_tick = self.now
        self._dt = 0.0
        self.next_event = next_event

    def time(self) -> float:
        return self.now

    def get_min_timeout(self) -> float:
        return self.next_event

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def waiting(
    clock: FakeClock, input_at: float | None = None
) -> tuple[loop.WaitingLoop, list[float]]:
    """A loop whose SDL wait sleeps on the fake clock; input arrives at ``input_at``."""
    waits: list[float] = []
    pending = [input_at] if input_at is not None else []

    def wait_for_input(seconds: float) -> bool:
        waits.append(seconds)
        if pending and clock.now + seconds >= pending[0]:
            clock.now = max(clock.now, pending.pop())
            return True
        clock.now += seconds
        return False

    return loop.WaitingLoop(clock, wait_for_input, clock.sleep), waits


def test_sleeps_until_the_next_clock_event_in_slices(clock: FakeClock) -> None:
    clock.next_event = clock.now + 0.5  # the header's clock, half a second from now
    waiter, waits = waiting(clock)
    assert waiter.idle() == pytest.approx(100.5)
    # Slices: a callback scheduled by another thread is seen within one.
    assert max(waits) <= loop.SLICE + 1e-9
    assert clock._dt == pytest.approx(0.5) and clock._last_tick == pytest.approx(100.5)


def test_without_clock_events_it_still_turns_after_max_wait(clock: FakeClock) -> None:
    waiter, _ = waiting(clock)
    assert waiter.idle() == pytest.approx(100.0 + loop.MAX_WAIT)


def test_input_ends_the_wait_and_is_dispatched_at_the_next_turn(clock: FakeClock) -> None:
    waiter, _ = waiting(clock, input_at=100.3)
    assert waiter.idle() == pytest.approx(100.3)
    # Kivy's window took the touch from SDL at the end of that turn: the next turn comes at
    # once, without waiting out the frame cap.
    waiter.poke()
    assert waiter.idle() == pytest.approx(100.3)
    # Then the loop sleeps again.
    clock.next_event = clock.now + 0.2
    assert waiter.idle() == pytest.approx(100.5)


def test_input_taken_during_a_turn_is_dispatched_after_the_frame_cap(clock: FakeClock) -> None:
    waiter, _ = waiting(clock)
    waiter.poke()  # the window took a touch at the end of a turn the clock woke
    assert waiter.idle() == pytest.approx(100.0 + 1 / 30)


def test_the_frame_cap_holds_when_events_are_always_due(clock: FakeClock) -> None:
    clock.next_event = 0.0  # an animation: something is due every turn
    waiter, waits = waiting(clock)
    ticks = [waiter.idle() for _ in range(3)]
    assert ticks == pytest.approx([100 + 1 / 30, 100 + 2 / 30, 100 + 3 / 30])
    assert waits == []  # never sleeps in SDL while something is due
