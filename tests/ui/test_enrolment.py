"""The enrolment screen under Xvfb: the big keypad, an error sentence, then the home screen."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ui


def test_server_address_is_prefilled(scenario):
    assert scenario("enrolment")["server_prefill"] == "https://liens.example.org"


def test_keypad_digits_and_erase_build_the_code(scenario):
    result = scenario("enrolment")
    # 4 8 1 5 erase 2 7 3
    assert result["code_typed"] == "481273"
    assert result["code_text"] == "481 273"


def test_keypad_keys_are_big(scenario):
    for key, (width, height) in scenario("enrolment")["key_sizes"].items():
        assert width >= 96 and height >= 96, key


def test_validate_calls_enrol_with_the_code_and_shows_invalid_code_sentence(scenario):
    result = scenario("enrolment")
    assert result["enrol_calls"] == [["https://liens.example.org", "481273"]]
    assert result["error_message"] == (
        "Ce code n'est pas reconnu. Vérifiez-le et tapez-le à nouveau."
    )
    assert result["screen_after_error"] == "enrolment"


def test_successful_enrolment_goes_home_and_starts_the_core(scenario):
    result = scenario("enrolment")
    assert len(result["enrol_calls_after"]) == 2
    assert result["screen_after_success"] == "home"
    assert result["started"] == 1
    assert result["code_after_success"] == ""
    assert result["core_stopped"] == 1
