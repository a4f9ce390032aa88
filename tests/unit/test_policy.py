"""Examples of ``kiosk.policy`` a reader can check by hand (the properties are beside it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiosk import policy as pol

PARIS = "Europe/Paris"
# Tuesday 24 November 2026, 13:00 in Paris.
TUESDAY_13H = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
AFTERNOONS = {"windows": [{"days": [0, 1, 2, 3, 4], "start": "14:00", "end": "18:00"}]}


def test_an_empty_policy_allows_any_time() -> None:
    assert pol.evaluate({}, TUESDAY_13H, PARIS).allowed
    assert pol.evaluate(None, TUESDAY_13H, PARIS).allowed


def test_outside_a_window_says_when_it_opens() -> None:
    decision = pol.evaluate(AFTERNOONS, TUESDAY_13H, PARIS)
    assert decision == pol.Decision(
        False, "outside_window", datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    )


def test_quiet_hours_win_over_windows() -> None:
    policy = {
        "windows": [{"start": "20:00", "end": "23:00"}],
        "quiet_hours": {"start": "21:00", "end": "08:00"},
    }
    at_22h = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
    decision = pol.evaluate(policy, at_22h, PARIS)
    assert decision.reason == "quiet_hours"
    assert decision.next_allowed == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)  # 20:00 tomorrow


def test_a_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    policy = {"windows": [{"days": [0], "start": "22:00", "end": "02:00"}]}  # Monday night
    tuesday_1h = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    wednesday_1h = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert pol.evaluate(policy, tuesday_1h, PARIS).allowed
    assert not pol.evaluate(policy, wednesday_1h, PARIS).allowed


def test_the_daily_limit_reopens_at_local_midnight_inside_a_night_window() -> None:
    policy = {"windows": [{"start": "22:00", "end": "02:00"}], "calls_per_day": 1}
    at_23h = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    decision = pol.evaluate(policy, at_23h, PARIS, calls_today=1)
    assert decision == pol.Decision(False, "daily_limit", datetime(2026, 11, 24, 23, 0, tzinfo=UTC))


def test_no_call_a_day_has_no_next_slot() -> None:
    decision = pol.evaluate({"calls_per_day": 0}, TUESDAY_13H, PARIS)
    assert decision == pol.Decision(False, "daily_limit")


@pytest.mark.parametrize("policy", [[], "", 0, {"windows": {}}, {"windows": [{"days": [True]}]}])
def test_unreadable_policies_allow_nothing(policy: object) -> None:
    assert pol.evaluate(policy, TUESDAY_13H, PARIS) == pol.Decision(  # type: ignore[arg-type]
        False, "invalid_policy"
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        pol.evaluate({}, datetime(2026, 11, 24, 13, 0), PARIS)


def test_auto_answer_seconds() -> None:
    assert pol.auto_answer_seconds({"auto_answer_s": 10}) == 10
    assert pol.auto_answer_seconds({"auto_answer_s": 0}) is None
    assert pol.auto_answer_seconds({"auto_answer_s": True}) is None
    assert pol.auto_answer_seconds(None) is None
