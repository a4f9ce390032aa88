"""The audio screens under Xvfb (docs/audio.md): the in-call volume buttons on a real audio
chain, and the staff screen's audio state and residents' hearing panel.

Each scenario of ``tests/ui/audio_driver.py`` runs the real app in its own process (see
``tests/ui/conftest.py``); the two run in parallel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import run_scenarios, scenario_env

SCENARIOS = ("incall", "staff")
# Deadlines, not measures (a scenario takes ~20 s alone, ~50 s on a loaded 2-core machine): the
# driver gives up after 240 s and says so, the process is killed after 300 s, pytest-timeout
# (which counts the module fixture's set-up) after 360 s.
TIMEOUT = 300
pytestmark = pytest.mark.timeout(360)


@pytest.fixture(scope="module")
def audio_results(
    xvfb_display: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("audio")
    env = scenario_env(xvfb_display, base / "kivy-home")
    return run_scenarios("tests.ui.audio_driver", SCENARIOS, base, env, timeout=TIMEOUT)


@pytest.fixture
def audio_scenario(audio_results: dict[str, dict[str, Any]]):
    def get(name: str) -> dict[str, Any]:
        result = audio_results[name]
        if not result.get("ok"):
            pytest.fail(
                f"audio scenario {name} failed: {result.get('error')}\n--- stderr ---\n"
                f"{result.get('stderr_tail')}"
            )
        return result

    return get


@pytest.mark.ui
def test_in_call_volume_buttons_are_big_french_and_clear_of_the_other_buttons(audio_scenario):
    result = audio_scenario("incall")
    assert result["labels"] == ["Plus fort", "Moins fort"]
    assert result["button_texts"] == ["+", "−"]
    for width, height in result["button_sizes"]:
        assert width >= result["eighteen_mm_px"] and height >= result["eighteen_mm_px"]
    assert result["volume_overlaps"] == []
    assert Path(result["screenshot"]).exists()


@pytest.mark.ui
def test_in_call_level_starts_at_the_residents_setting_and_is_shown(audio_scenario):
    result = audio_scenario("incall")
    assert result["levels"] == 4
    assert result["level_at_start"] == 1  # Jeanne's saved +3 dB
    assert result["text_at_start"] == "Plus fort +1"
    assert result["bars_lit_at_start"] == 2
    # The tablet's volume (0.8: -4.8 dB) plus her boost.
    assert result["gain_db_at_start"] == pytest.approx(-1.8, abs=0.05)


@pytest.mark.ui
def test_plus_and_minus_turn_the_live_call_up_and_down_and_it_is_remembered(audio_scenario):
    result = audio_scenario("incall")
    assert result["level_after_two_ups"] == 3
    assert result["text_after_two_ups"] == "Plus fort +3"
    assert result["gain_db_after_two_ups"] == pytest.approx(4.2, abs=0.05)
    assert result["saved_after_two_ups"] == 9.0
    assert result["text_at_top"] == "Au maximum"
    assert result["bars_lit_at_top"] == 5
    assert result["level_after_tap_at_top"] == 4
    assert result["level_after_down"] == 3
    assert result["saved_at_end"] == 9.0 and result["chain_boost_at_end"] == 9.0
    assert result["hang_ups"] == 0  # no volume tap reached the hang-up button
    assert result["live_after_stop"] is None


@pytest.mark.ui
def test_staff_screen_shows_the_audio_devices_and_who_cancels_echo(audio_scenario):
    result = audio_scenario("staff")
    probe = result["probe"]
    expected = {True: "trouvé", False: "non trouvé", None: "non vérifié"}
    assert result["microphone"] == expected[probe["microphone"]]
    assert result["speaker"] == expected[probe["speaker"]]
    assert result["echo"] == ("par PipeWire" if probe["system_echo_cancel"] else "par la tablette")
    if probe["microphone"] is False or probe["speaker"] is False:
        # This machine has no sound card: the clear state staff must see.
        assert result["devices_notice"].startswith("Aucun micro ou haut-parleur")


@pytest.mark.ui
def test_staff_set_each_residents_hearing_and_it_is_kept_on_the_tablet(audio_scenario):
    result = audio_scenario("staff")
    assert result["hearing_button"] == "Audition des résidents"
    assert result["rows"] == [
        ["Jeanne", "normal", "Voix plus claire : non", "Dire qui appelle : non"],
        ["Marcel", "+9 dB", "Voix plus claire : oui", "Dire qui appelle : oui"],
    ]
    for height in result["row_button_heights_px"]:
        assert height >= result["eighteen_mm_px"]
    boxes = result["row_boxes"]
    for a, b in zip(list(boxes.values()), list(boxes.values())[1:], strict=False):
        assert a[0] + a[2] <= b[0], boxes  # side by side, none over the next
    assert boxes["announce_toggle"][0] + boxes["announce_toggle"][2] <= 1280
    for name, (text_w, text_h, width, height) in result["toggle_fits"].items():
        assert text_w <= width and text_h <= height, (name, result["toggle_fits"])
    assert result["boost_after_minus_at_zero"] == 0
    assert result["rows_after"] == [
        ["Jeanne", "+3 dB", "Voix plus claire : oui", "Dire qui appelle : oui"],
        ["Marcel", "+9 dB", "Voix plus claire : oui", "Dire qui appelle : non"],
    ]
    assert result["saved"] == {
        "r1": {"boost_db": 3.0, "speech_boost": True, "announce": True},
        "r2": {"boost_db": 9.0, "speech_boost": True, "announce": False},
    }
    assert result["panel_closed"] is True
