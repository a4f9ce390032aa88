"""The echo canceller on French speech (bench/echo.py), at one echo delay so that it stays fast.

Needs ``espeak-ng`` (the Makefile's SYSTEM_PACKAGES installs it): without it the test fails and
says so, rather than skipping a measurement CI must make.
"""

from __future__ import annotations

import shutil

import pytest

from bench import echo

# A little under the bench's targets: one run on a loaded machine, one delay.
ERLE_FLOOR_DB = echo.TARGET_ERLE_DB - 2.0
# With the double-talk path (kiosk/audio/doubletalk.py) the resident's voice keeps a correlation
# of 0.927 with the clean one in double talk here (0.918-0.934 over three rooms and three delays;
# 0.86 without it, docs/audio.md): this floor catches a regression, a little under the 0.9 target.
NEAR_KEPT_FLOOR = 0.89


@pytest.fixture(scope="module")
def clips() -> echo.Clips:
    if shutil.which("espeak-ng") is None:
        pytest.fail(
            "espeak-ng is missing: this test makes its French speech with it. Install it with "
            "`apt-get install espeak-ng` (`make test` does, from SYSTEM_PACKAGES)."
        )
    return echo.make_clips()


def test_the_clips_are_french_speech_long_enough_for_convergence_and_double_talk(clips):
    far_s = clips.far.size / echo.RATE
    near_s = clips.near.size / echo.RATE
    assert far_s > echo.DOUBLE_TALK_START_S + 3
    assert 3 < near_s < far_s


def test_echo_is_cancelled_by_25_db_and_the_resident_is_kept_in_double_talk(clips):
    result = echo.measure_delay(clips, 60)
    assert result["erle_db"] >= ERLE_FLOOR_DB, result
    assert result["near_kept"] >= NEAR_KEPT_FLOOR, result
    # The resident's voice keeps its level during double talk (-1 dB measured; AEC3's suppressor
    # alone takes 6 dB), and the canceller adds little delay.
    assert result["near_gain_db"] > -3, result
    assert result["near_delay_ms"] <= 20, result


def test_the_double_talk_path_keeps_more_of_the_resident_and_as_little_echo(clips):
    result = echo.measure_delay(clips, 60)
    without = echo.measure_delay(clips, 60, variant="no_double_talk")
    assert result["near_kept"] >= without["near_kept"] + 0.03, (result, without)
    assert result["erle_db"] >= without["erle_db"] - 1.0, (result, without)


def test_the_whole_audio_path_costs_a_small_part_of_a_core(clips):
    cost = echo.path_cost(clips, seconds=3.0)
    # Measured 11-17 % of one core on this loaded machine; 40 % would mean something went wrong.
    assert 0 < cost["cpu_per_audio_s"] < 0.4, cost
    assert cost["underruns"] == 0 and cost["far_frames_played"] >= 290, cost


def test_without_espeak_the_bench_says_what_to_install(monkeypatch):
    monkeypatch.setattr(echo.shutil, "which", lambda _name: None)
    with pytest.raises(echo.EspeakMissing, match="apt-get install espeak-ng"):
        echo.speech("Bonjour", "fr")
