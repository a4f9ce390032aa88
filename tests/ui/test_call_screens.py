"""The call screens under Xvfb: incoming, automatic answer, in call (video), outgoing, refused.

Each scenario of ``tests/ui/call_driver.py`` runs the real app in its own process (see
``tests/ui/conftest.py`` for why), over a fake core with the call engine's API; the three run in
parallel. The sentences' wording is also tested without a window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk import i18n
from screens.call import sentences
from tests.ui.conftest import run_scenarios, scenario_env
from tests.ui.limits import PYTEST_TIMEOUT, SCENARIOS_TIMEOUT, SMOOTH_FRAME_GAP_S

SCENARIOS = ("incoming", "countdown", "outgoing")
pytestmark = pytest.mark.timeout(PYTEST_TIMEOUT)  # see tests/ui/limits.py


@pytest.fixture(scope="module")
def call_results(
    xvfb_display: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("calls")
    env = scenario_env(xvfb_display, base / "kivy-home")
    return run_scenarios("tests.ui.call_driver", SCENARIOS, base, env, timeout=SCENARIOS_TIMEOUT)


@pytest.fixture
def call_scenario(call_results: dict[str, dict[str, Any]]):
    def get(name: str) -> dict[str, Any]:
        result = call_results[name]
        if not result.get("ok"):
            pytest.fail(
                f"call scenario {name} failed: {result.get('error')}\n--- stderr ---\n"
                f"{result['stderr_tail']}"
            )
        return result

    return get


# --- incoming call, answered, in call ------------------------------------------------------------


@pytest.mark.ui
def test_incoming_call_shows_the_caller_and_answer_reaches_the_engine_once(call_scenario):
    result = call_scenario("incoming")
    assert result["incoming_title"] == "Julie vous appelle"
    assert result["incoming_photo"] is True
    assert result["countdown_text_without_auto_answer"] == ""
    for width, height in result["incoming_button_sizes"].values():
        assert width >= 300 and height >= 150
    # Two touches (tremor) on "Décrocher": one answer.
    assert result["answers"] == 1


@pytest.mark.ui
def test_remote_frames_reach_the_texture_upright(call_scenario):
    result = call_scenario("incoming")
    assert result["texture_size"] == [640, 480]
    red, green, blue = [255, 0, 0], [0, 255, 0], [0, 0, 255]
    assert result["texture_texels"] == {"top_left": green, "bottom_left": red, "bottom_right": blue}
    # On screen: letterboxed 4:3 in 1280x800, the frame's top (green band) at the top.
    assert result["picture_rect"] == [107, 0, 1067, 800]
    assert result["screen_pixels"] == {"left": red, "top_left": green, "right": blue}


@pytest.mark.ui
def test_texture_follows_a_change_of_frame_size(call_scenario):
    result = call_scenario("incoming")
    assert result["small_texture_size"] == [320, 240]
    red, green, blue = [255, 0, 0], [0, 255, 0], [0, 0, 255]
    assert result["small_texture_texels"] == {
        "top_left": green,
        "bottom_left": red,
        "bottom_right": blue,
    }
    assert result["texture_creations"] == 2
    assert result["local_has_frame"] is True


@pytest.mark.ui
def test_hang_up_is_at_least_3_cm_and_reaches_the_engine(call_scenario):
    result = call_scenario("incoming")
    width, height = result["hang_up_size"]
    assert width >= result["three_cm_px"] and height >= result["three_cm_px"]
    assert result["hang_ups"] == 1


@pytest.mark.ui
def test_end_of_call_says_so_forgets_the_picture_and_goes_home(call_scenario):
    result = call_scenario("incoming")
    assert result["ended_sentence"] == "L'appel est terminé."
    assert result["remote_texture_after_end"] is False
    assert 2.5 <= result["home_after_s"] <= 8


# --- automatic answer, cut call, declined call ---------------------------------------------------


@pytest.mark.ui
def test_automatic_answer_counts_down(call_scenario):
    result = call_scenario("countdown")
    texts = [t for t in result["countdown_texts"] if t.startswith("Réponse automatique dans")]
    assert texts[0] == "Réponse automatique dans 3 s", texts
    numbers = [int(t.split()[-2]) for t in texts]
    assert numbers == sorted(numbers, reverse=True) and numbers[-1] >= 1, texts
    # Every second is shown when the app drew often enough to show it; a machine so loaded
    # that the app did not draw for half a second can jump a number (the count keeps time).
    if result["countdown_longest_frame_gap_s"] < SMOOTH_FRAME_GAP_S:
        assert numbers == [3, 2, 1], (texts, result["countdown_longest_frame_gap_s"])


@pytest.mark.ui
def test_in_call_waits_calmly_for_the_first_picture(call_scenario):
    result = call_scenario("countdown")
    assert result["waiting_text"] == "Connexion avec Julie…"
    assert result["waiting_visible"] is True
    assert result["network_sentence"] == "L'appel a été coupé. Vous pouvez rappeler Julie."


@pytest.mark.ui
def test_decline_reaches_the_engine_and_missed_calls_are_named(call_scenario):
    result = call_scenario("countdown")
    assert result["countdown_text_second_call"] == ""
    assert result["declines"] == 1
    assert result["answers"] == 0
    assert result["declined_sentence"] == "L'appel est terminé."
    assert result["cancelled_by_caller_sentence"] == "Julie a essayé de vous appeler."


@pytest.mark.ui
def test_call_colours_reach_aaa_contrast(call_scenario):
    for pair, ratio in call_scenario("countdown")["contrast"].items():
        assert ratio >= 7, pair


# --- outgoing ------------------------------------------------------------------------------------


@pytest.mark.ui
def test_tile_tap_starts_a_call_then_it_rings_and_cancel_hangs_up(call_scenario):
    result = call_scenario("outgoing")
    assert result["start_calls"] == ["ap-1"]
    assert result["records"] == [["call_requested", {"approval_id": "ap-1", "resident_id": "r1"}]]
    assert result["outgoing_name"] == "Julie"
    assert result["status_dialling"] == "Appel en cours…"
    assert result["status_ringing"] == "Ça sonne chez Julie…"
    assert result["hang_ups"] == 1
    assert result["cancelled_sentence"] == "L'appel est terminé."
    assert result["cancelled_shows_back"] is False


@pytest.mark.ui
def test_refused_call_is_a_calm_sentence_with_the_next_slot_and_a_way_home(call_scenario):
    result = call_scenario("outgoing")
    assert result["refused_sentence"] == (
        "Ce n'est pas le moment d'appeler Julie. Vous pourrez l'appeler demain à 14 h."
    )
    assert result["refused_shows_back"] is True
    width, height = result["back_size"]
    assert width >= 300 and height >= 96
    assert result["home_after_back"] is True


@pytest.mark.ui
def test_declined_outgoing_call_says_the_relative_could_not_answer(call_scenario):
    result = call_scenario("outgoing")
    assert result["declined_sentence"] == "Julie n'a pas pu répondre."
    assert result["start_calls_at_end"] == ["ap-1", "ap-1", "ap-1"]


# --- sentences, without a window -----------------------------------------------------------------


@pytest.fixture
def french():
    i18n.set_language("fr")
    yield
    i18n.set_language(i18n.DEFAULT_LANGUAGE)


PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)  # a Monday


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 23, 14, 0, tzinfo=PARIS), "aujourd'hui à 14 h"),
        (datetime(2026, 11, 24, 9, 30, tzinfo=PARIS), "demain à 9 h 30"),
        (datetime(2026, 11, 27, 14, 5, tzinfo=PARIS), "vendredi à 14 h 05"),
        # next_allowed comes in UTC: said in the home's time zone.
        (datetime(2026, 11, 30, 13, 0, tzinfo=UTC), "lundi à 14 h"),
    ],
)
def test_next_slot_is_said_as_a_person_would(french, moment, expected):
    assert sentences.when_text(moment, now=NOW, timezone=PARIS) == expected


def test_refusal_sentences(french):
    assert sentences.refused_sentence("policy", "Julie", None, now=NOW) == (
        "Ce n'est pas le moment d'appeler Julie. Réessayez plus tard."
    )
    assert sentences.refused_sentence("busy", "Julie", None, now=NOW).startswith(
        "Un appel est déjà en cours."
    )
    assert sentences.refused_sentence("error", "Julie", None, now=NOW).startswith(
        "L'appel n'a pas pu aboutir."
    )


@pytest.mark.parametrize(
    ("reason", "direction", "connected", "expected"),
    [
        ("declined", "outgoing", False, "Julie n'a pas pu répondre."),
        ("missed", "outgoing", False, "Julie n'a pas pu répondre."),
        ("unavailable", "outgoing", False, "Julie n'a pas pu répondre."),
        ("busy", "outgoing", False, "Julie est déjà en ligne. Réessayez un peu plus tard."),
        ("cancelled", "outgoing", False, "L'appel est terminé."),
        ("missed", "incoming", False, "Julie a essayé de vous appeler."),
        ("hung_up", "incoming", True, "L'appel est terminé."),
        ("policy", "incoming", True, "L'appel est terminé."),
        ("network", "outgoing", True, "L'appel a été coupé. Vous pouvez rappeler Julie."),
        (None, "outgoing", False, "L'appel est terminé."),
    ],
)
def test_end_sentences(french, reason, direction, connected, expected):
    assert (
        sentences.ended_sentence(reason, "Julie", direction=direction, connected=connected)
        == expected
    )


def test_ringtone_is_a_short_valid_wav(tmp_path: Path):
    import wave

    from screens.call.incoming import RINGTONE_RATE, write_ringtone

    path = write_ringtone(tmp_path / "ring.wav")
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == RINGTONE_RATE
        assert wav.getnchannels() == 1
        assert 1.0 < wav.getnframes() / RINGTONE_RATE < 4.0
