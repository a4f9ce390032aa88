"""Who is using the tablet, under Xvfb: picker, a youth's PIN (right, wrong, lock-out, staff
reset), each resident's home only, back to the picker when idle; one-resident tablets.

Each scenario of ``tests/ui/picker_driver.py`` runs the real app in its own process over a fake
core (see ``tests/ui/conftest.py`` for why); they run in parallel. With
``LIENS_UPDATE_DOCS_SCREENS=1`` the screenshots are copied to ``docs/screens/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.ui.conftest import REPO, scenario_env
from tests.ui.limits import PYTEST_TIMEOUT, SCENARIOS_TIMEOUT

SCENARIOS = ("pin", "idle", "single")
TIMEOUT = SCENARIOS_TIMEOUT  # deadlines, not measures: see tests/ui/limits.py

pytestmark = [pytest.mark.ui, pytest.mark.timeout(PYTEST_TIMEOUT)]


@pytest.fixture(scope="module")
def results(xvfb_display: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("picker")
    env = scenario_env(xvfb_display, base / "kivy-home")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "tests.ui.picker_driver", name, str(base / name)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in SCENARIOS
    }
    started = time.monotonic()
    found: dict[str, Any] = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=max(1, TIMEOUT - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("RESULT:")]
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT:") :]) if lines else {}
        result["stderr_tail"] = err[-4000:]
        found[name] = result
    return found


def scenario(results: dict[str, Any], name: str) -> dict[str, Any]:
    result = results[name]
    if not result.get("ok"):
        error, tail = result.get("error"), result["stderr_tail"]
        pytest.fail(f"picker scenario {name} failed: {error}\n{tail}")
    return result


def test_picker_shows_every_resident_and_no_contact(results: dict[str, Any]) -> None:
    r = scenario(results, "pin")
    assert r["picker_names"] == ["Jeanne", "Léa", "Yanis"]
    assert r["picker_title"] == "Qui utilise la tablette ?"
    assert r["home_tiles_behind_picker"] == []
    assert all(w >= 96 and h >= 96 for w, h in r["picker_sizes"])


def test_youth_pin_wrong_then_right_opens_her_home_only(results: dict[str, Any]) -> None:
    r = scenario(results, "pin")
    assert r["pin_title"] == "Léa, tape ton code"
    assert all(w >= 96 and h >= 96 for w, h in r["key_sizes"])
    assert r["wrong_status"] == "Ce n'est pas le bon code. Encore 4 essais."
    assert r["screen_after_wrong"] == "pin"
    assert r["lea_tiles"] == ["Nadia", "Karim"]  # not Jeanne's, not Yanis's
    assert r["lea_look"] == "youth"
    assert r["lea_request_buttons"] == 1
    assert r["tiles_after_done"] == []


def test_five_wrong_pins_lock_calmly_until_staff_reset(results: dict[str, Any]) -> None:
    r = scenario(results, "pin")
    assert r["last_try_status"] == "Ce n'est pas le bon code. Encore un essai."
    assert r["locked"] and r["still_locked"]
    assert r["locked_status"] == (
        "Trop d'essais. Tu pourras réessayer dans 15 min. Demande à un éducateur."
    )
    assert r["typed_while_locked"] == ""
    assert r["status_after_reset"] == ""
    assert r["home_after_reset"] == ["Nadia", "Karim"]


def test_youth_without_a_pin_on_a_shared_tablet_asks_an_educator(results: dict[str, Any]) -> None:
    r = scenario(results, "pin")
    assert r["no_pin_locked"]
    assert r["no_pin_status"] == "Ton code n'a pas encore été choisi. Demande à un éducateur."


def test_senior_one_tap_tile_states_and_idle_return(results: dict[str, Any]) -> None:
    r = scenario(results, "idle")
    assert r["jeanne_tiles"] == ["Marie Dupont", "Jean-Pierre Martin"]
    assert r["look"] == "senior"
    assert r["states"] == [["available", ""], ["later", "Demain à 14 h"]]
    # kiosk.idle_return_s = 2: back to the picker after about 2 s (the clock ticks each second).
    assert 1.0 <= r["idle_return_s"] <= 12
    assert r["tiles_after_idle"] == []


def test_offline_home_says_so_and_keeps_tappable_tiles(results: dict[str, Any]) -> None:
    r = scenario(results, "idle")
    assert r["offline_text"] == "La tablette cherche le réseau…"
    assert r["offline_states"] == ["offline", "later"]


def test_one_resident_skips_the_picker_a_lone_youth_still_types_her_pin(
    results: dict[str, Any],
) -> None:
    r = scenario(results, "single")
    assert r["senior_screen"] == "home"
    assert r["senior_tiles"] == ["Marie Dupont", "Jean-Pierre Martin"]
    assert r["youth_screen"] == "pin"
    assert r["youth_can_go_back"] is False
    assert r["youth_tiles"] == ["Nadia", "Karim"]


def test_night_dims_and_says_it_calmly(results: dict[str, Any]) -> None:
    r = scenario(results, "single")
    # The sentence follows the hour of the run (kiosk.viewmodel.night_part).
    assert (
        r["night_text"]
        == {
            "evening": "Il est tard, on appellera demain.",
            "night": "C'est la nuit, on appellera ce matin.",
            "morning": "Il est encore tôt, on appellera un peu plus tard.",
            "day": "C'est l'heure du calme, on appellera un peu plus tard.",
        }[r["night_part"]]
    )
    assert r["night_brightness"] < 0.5
