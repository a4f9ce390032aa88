"""Lockdown under Xvfb: keys that do nothing, the staff gesture, the staff PIN and screen.

Each scenario of ``tests/ui/lockdown_driver.py`` runs the real app over a fake core in its own
process (see ``tests/ui/conftest.py``); they run in parallel. The PIN logic and the key filter
are also tested here without a window.
"""

from __future__ import annotations

from typing import Any

import pytest

from screens import lockdown
from screens.staff.access import StaffAccess, match_pin, staff_pins
from tests.ui.conftest import run_scenarios, scenario_env, scenario_result
from tests.ui.limits import PYTEST_TIMEOUT, SCENARIOS_TIMEOUT

SCENARIOS = ("keys", "staff", "reenrol", "leave")
pytestmark = pytest.mark.timeout(PYTEST_TIMEOUT)  # see tests/ui/limits.py


@pytest.fixture(scope="module")
def lockdown_results(
    xvfb_display: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("lockdown")
    env = scenario_env(xvfb_display, base / "kivy-home")
    return run_scenarios(
        "tests.ui.lockdown_driver", SCENARIOS, base, env, timeout=SCENARIOS_TIMEOUT
    )


def scenario(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return scenario_result(results, name)


@pytest.mark.ui
def test_escape_back_settings_keys_and_close_do_nothing(lockdown_results):
    r = scenario(lockdown_results, "keys")
    assert r["swallowed"] == {"escape": True, "f1": True, "menu": True, "alt_f4": True}
    assert r["close_refused"] is True
    assert r["settings_opened"] is False
    assert r["screen_after_keys"] == "home"
    assert r["alive"] is True


@pytest.mark.ui
def test_a_short_press_or_another_corner_opens_nothing(lockdown_results):
    r = scenario(lockdown_results, "keys")
    assert r["screen_after_short_hold"] == "home"
    assert r["screen_after_other_corner"] == "home"


@pytest.mark.ui
def test_gesture_then_pin_opens_the_staff_screen_in_the_tablets_language(lockdown_results):
    r = scenario(lockdown_results, "staff")
    assert r["resident_language"] == "fr"
    assert r["pin_screen_language"] == "en"  # the tablet's language, not the resident's
    assert r["pin_title"] == "Staff code"
    assert r["tile_calls_after_hold"] == []  # holding the corner pressed nothing under it
    assert r["wrong_message"] == "This PIN is not right. 4 tries left."
    assert r["screen_after_wrong"] == "staff_pin"
    assert r["staff_title"] == "Tablet settings"
    assert r["opened_event"] == [["staff_screen_opened", {"staff_id": "s-1"}]]
    assert r["staff_info"] == {
        "version": "9.9.9-test",
        "connection": "Connecting…",
        "server": "https://liens.example.org",
        "tablet": "Salon du 2e",
        "microphone": "found",
        "speaker": "not found",
    }
    assert "No microphone or speaker" in r["devices_notice"]


@pytest.mark.ui
def test_staff_settings_are_applied_and_stored(lockdown_results):
    r = scenario(lockdown_results, "staff")
    assert r["language_after_fr"] == "fr"
    assert r["staff_title_fr"] == "Réglages de la tablette"
    assert r["saved"] == [{"language": "fr", "volume": 0.3, "brightness": 0.4}]
    assert r["dim_alpha"] > 0.4  # no writable backlight here: the overlay dims
    assert r["dim_alpha_full"] == 0.0


@pytest.mark.ui
def test_back_to_the_residents_in_their_language(lockdown_results):
    r = scenario(lockdown_results, "staff")
    assert r["back_language"] == "fr"
    assert r["back_tiles_same"] is True


@pytest.mark.ui
def test_five_wrong_pins_lock_the_keypad_even_for_the_right_pin(lockdown_results):
    r = scenario(lockdown_results, "staff")
    assert r["lockout_messages"][:4] == [
        "Ce code n'est pas le bon. Encore 4 essais.",
        "Ce code n'est pas le bon. Encore 3 essais.",
        "Ce code n'est pas le bon. Encore 2 essais.",
        "Ce code n'est pas le bon. Encore un essai.",
    ]
    assert r["lockout_messages"][4] == "Trop de codes erronés. Réessayez dans 5 minutes."
    assert r["screen_locked_right_pin"] == "staff_pin"
    assert r["screen_after_back"] == "home"


@pytest.mark.ui
def test_reenrol_asks_first_then_forgets_and_shows_enrolment(lockdown_results):
    r = scenario(lockdown_results, "reenrol")
    assert r["confirming"] is True
    assert r["through_panel"] == [True, True]
    assert r["after_cancel"] == [False, 0]
    assert r["forgotten"] == 1
    assert r["home_tiles_after"] == 0
    assert r["staff_without_pin_when_not_enrolled"] == "staff"


@pytest.mark.ui
def test_leave_the_kiosk_stops_the_app(lockdown_results):
    r = scenario(lockdown_results, "leave")
    assert r["before_leave"] == "staff"
    assert r["left_by_staff"] is True
    assert "still_running" not in r
    assert r["core_stopped"] >= 1


# --- no window ---------------------------------------------------------------------------------


def test_swallowed_keys():
    assert lockdown.swallow_key(27)
    assert lockdown.swallow_key(282)
    assert lockdown.swallow_key(285, 0, None, ["alt"])
    assert not lockdown.swallow_key(285, 0, None, [])
    assert not lockdown.swallow_key(ord("a"))


def test_lockout_lasts_five_minutes():
    now = [1000.0]
    access = StaffAccess(clock=lambda: now[0])
    for _ in range(4):
        access.failed()
    assert access.locked_for() == 0 and access.tries_left == 1
    access.failed()
    assert access.locked_for() == pytest.approx(300)
    now[0] += 299
    assert access.locked_for() == pytest.approx(1)
    now[0] += 2
    assert access.locked_for() == 0


def test_pin_matches_an_argon2_hash_from_the_config():
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    config = {
        "staff_pins": [
            {"staff_id": "a", "name": "A", "pin_hash": hasher.hash("1234")},
            {"staff_id": "b", "name": "B", "pin_hash": "not a hash"},
            {"staff_id": "c", "name": "C", "pin_hash": ""},
        ]
    }
    entries = staff_pins(config)
    assert [e["staff_id"] for e in entries] == ["a", "b"]
    assert match_pin("1234", entries)["staff_id"] == "a"
    assert match_pin("4321", entries) is None
    assert match_pin("12", entries) is None  # not a PIN at all
    assert staff_pins(None) == []
