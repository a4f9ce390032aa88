""" "Demander un contact" under Xvfb: the button for children only, relation, confirmation, event.

Each scenario of ``tests/ui/request_driver.py`` runs the real app in its own process over a fake
core (see ``tests/ui/conftest.py`` for why); both run in parallel. With
``LIENS_UPDATE_DOCS_SCREENS=1`` the screenshots are copied to ``docs/screens/``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import run_scenarios, scenario_env, scenario_result
from tests.ui.limits import PYTEST_TIMEOUT, SCENARIOS_TIMEOUT

SCENARIOS = ("youth", "senior")
pytestmark = pytest.mark.timeout(PYTEST_TIMEOUT)  # see tests/ui/limits.py


@pytest.fixture(scope="module")
def request_results(
    xvfb_display: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("request")
    env = scenario_env(xvfb_display, base / "kivy-home")
    return run_scenarios("tests.ui.request_driver", SCENARIOS, base, env, timeout=SCENARIOS_TIMEOUT)


def scenario(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return scenario_result(results, name)


@pytest.mark.ui
def test_youth_home_shows_the_button_and_the_request_reaches_the_core(
    request_results: dict[str, dict[str, Any]],
) -> None:
    r = scenario(request_results, "youth")
    assert r["button_text"] == "Demander un contact"
    assert r["button_on_screen"] and r["tiles_on_screen"]
    assert r["button_size"][1] >= 96
    assert r["title"] == "Qui aimerais-tu pouvoir appeler ?"
    assert r["relation_labels"] == [
        "Maman",
        "Papa",
        "Grand-mère",
        "Grand-père",
        "Frère",
        "Sœur",
        "Tante",
        "Oncle",
        "Un·e ami·e",
        "Autre",
    ]
    assert r["relations_on_screen"]
    assert all(w >= 96 and h >= 96 for w, h in r["relation_sizes"])
    assert r["records_after_back"] == []  # "Retour" asks nothing
    # Two taps of a shaky finger: one request, with the fields the backend reads.
    assert r["records"] == [
        ["contact_request", {"resident_id": "y1", "who": "Grandma", "relation": "grandmother"}]
    ]
    assert r["sent_text"] == "Ta demande est envoyée. Un éducateur t'en parlera."
    assert r["back_home"] == "home"


@pytest.mark.ui
def test_senior_never_sees_the_button_and_a_shared_tablet_shows_it_for_the_child_only(
    request_results: dict[str, dict[str, Any]],
) -> None:
    r = scenario(request_results, "senior")
    assert r["senior_buttons"] == 0
    assert r["senior_buttons_shared"] == 0  # Jeanne picked on a shared tablet
    assert r["mixed_buttons"] == ["y1"]  # Léa (youth, no contact yet), not Jeanne (senior)
    assert r["request_for"] == "y1"
    assert r["records"] == [
        ["contact_request", {"resident_id": "y1", "who": "A friend", "relation": "friend"}]
    ]
    assert r["home_by_itself"]
