"""Supervised calls and call limits on screen, under Xvfb (``tests/ui/call_policy_driver.py``).

The staff PIN keypad of a supervised call (outgoing and incoming), "Il reste une minute" over the
video, and the calm sentences when the time limit or staff end a call. The two scenarios run in
parallel, each in its own process, over a fake core.
"""

from __future__ import annotations

from typing import Any

import pytest

from kiosk import i18n
from screens.call import sentences
from tests.ui.conftest import run_scenarios, scenario_env
from tests.ui.limits import PYTEST_TIMEOUT, SCENARIOS_TIMEOUT

SCENARIOS = ("supervised", "limits")
pytestmark = pytest.mark.timeout(PYTEST_TIMEOUT)  # see tests/ui/limits.py


@pytest.fixture(scope="module")
def policy_results(
    xvfb_display: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("call-policy")
    env = scenario_env(xvfb_display, base / "kivy-home")
    return run_scenarios(
        "tests.ui.call_policy_driver", SCENARIOS, base, env, timeout=SCENARIOS_TIMEOUT
    )


@pytest.fixture
def scenario(policy_results: dict[str, dict[str, Any]]):
    def get(name: str) -> dict[str, Any]:
        result = policy_results[name]
        if not result.get("ok"):
            pytest.fail(
                f"scenario {name} failed: {result.get('error')}\n--- stderr ---\n"
                f"{result['stderr_tail']}"
            )
        return result

    return get


@pytest.mark.ui
def test_the_keypad_asks_for_a_staff_code_before_dialling(scenario):
    result = scenario("supervised")
    assert result["title"] == "Pour appeler Julie, un membre de l'équipe doit taper son code."
    assert result["status_required"] == "Un membre de l'équipe doit taper son code"
    assert result["status_font"] >= 28
    for width, height in result["key_sizes"]:
        assert width >= 96 and height >= 96
    # 1 3 5 7 9, erase: four dots, never the digits.
    assert result["dots"] == "• • • •"
    assert result["dots_after_ok"] == ""
    assert result["status_checking"] == "Vérification du code…"
    assert result["dots_while_checking"] == ""  # the keypad waits while the code is checked
    assert result["status_wrong"] == "Ce code n'est pas le bon. Encore 2 essais."
    assert result["pins"] == ["1357", "2468"]
    assert result["after_supervision"] == "call_outgoing"


@pytest.mark.ui
def test_an_incoming_supervised_call_shows_the_keypad_and_cancel_declines(scenario):
    result = scenario("supervised")
    assert result["incoming_title"] == (
        "Julie vous appelle. Un membre de l'équipe doit taper son code pour répondre."
    )
    assert result["hang_ups"] == 1


@pytest.mark.ui
def test_one_minute_left_is_shown_in_large_type_over_the_video(scenario):
    result = scenario("limits")
    assert result["warning_before"] == ["", 0]
    assert result["warning_text"] == "Il reste une minute"
    assert result["warning_font_px"] >= 40
    x, y, width, height = result["warning_on_screen"]
    assert x >= 0 and x + width <= 1280 and y + height <= 800 and width > 400
    assert result["warning_next_call"] == ""  # the next call starts without it


@pytest.mark.ui
def test_the_limit_and_staff_ends_are_said_calmly(scenario):
    result = scenario("limits")
    assert result["limit_sentence"] == (
        "Le temps de cet appel est écoulé. Vous pourrez rappeler Julie une autre fois."
    )
    assert result["staff_sentence"] == "L'appel a été terminé par l'équipe."


def test_policy_sentences_in_english() -> None:
    i18n.set_language("en")
    try:
        assert sentences.warning_text("one_minute") == "One minute left"
        assert sentences.warning_text(None) == ""
        assert sentences.supervise_status("required", "wrong", 1) == (
            "This code is not right. One try left."
        )
        assert sentences.ended_sentence(
            "policy", "Julie", direction="outgoing", connected=True, ended_by="staff"
        ) == ("The call was ended by the staff.")
        # Without who ended it, a policy end of a connected call stays "The call is over."
        assert sentences.ended_sentence(
            "policy", "Julie", direction="incoming", connected=True
        ) == ("The call is over.")
    finally:
        i18n.set_language(i18n.DEFAULT_LANGUAGE)
