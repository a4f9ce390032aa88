"""The activities under Xvfb: the home's row, the memory game played to the end with real taps,
the slideshow from the photo cache (arrows, caption, "Nouveau", one heart), the day and time.

Each scenario of ``tests/ui/activities_driver.py`` runs the real app in its own process over a
fake core with a real :class:`kiosk.photos.PhotoCache` (see ``tests/ui/conftest.py`` for why);
they run in parallel. With ``LIENS_UPDATE_DOCS_SCREENS=1`` the screenshots are copied to
``docs/screens/activity-*.png``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.conftest import run_scenarios, scenario_env, scenario_result
from tests.ui.limits import PYTEST_TIMEOUT, SCENARIOS_TIMEOUT

SCENARIOS = ("memory", "photos", "clock")
pytestmark = pytest.mark.timeout(PYTEST_TIMEOUT)  # see tests/ui/limits.py


@pytest.fixture(scope="module")
def activity_results(
    xvfb_display: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("activities")
    env = scenario_env(xvfb_display, base / "kivy-home")
    return run_scenarios(
        "tests.ui.activities_driver", SCENARIOS, base, env, timeout=SCENARIOS_TIMEOUT
    )


def scenario(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return scenario_result(results, name)


def events(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [data for event, data in result["records"] if event == kind]


@pytest.mark.ui
def test_the_home_shows_the_activities_as_big_tiles_under_the_contacts(
    activity_results: dict[str, dict[str, Any]],
) -> None:
    r = scenario(activity_results, "memory")
    assert r["tiles"] == [
        ["photos", "Photos de famille", "image-multiple"],
        ["memory", "Jeu des paires", "cards-outline"],
        ["clock", "Le jour et l'heure", "calendar-clock"],
    ]
    assert all(w >= 300 and h >= 96 for w, h in r["tile_sizes"])
    assert r["tiles_on_screen"] and r["contacts_on_screen"]


@pytest.mark.ui
def test_memory_game_played_to_the_end_with_taps(
    activity_results: dict[str, dict[str, Any]],
) -> None:
    r = scenario(activity_results, "memory")
    assert r["choose_title"] == "Combien de paires ?"
    assert r["choices"] == ["4 paires", "6 paires", "8 paires"]
    # A wrong try: both cards up, a kind word, and they turn back by themselves.
    assert r["wrong_try_up"] == [True, True]
    assert r["wrong_try_message"] == "Pas la même image. Touchez une autre carte."
    assert r["covered_by_itself"]
    assert r["all_on_screen"] and r["card_sizes"][0][0] >= 250
    assert r["pictures"] == "builtin"  # no family photos on this tablet
    assert r["done_text"] == "Bravo ! Toutes les paires sont trouvées."
    assert r["done_buttons"] == ["Rejouer", "Changer le nombre de cartes"]
    assert r["again_pairs"] == 4
    assert r["sixteen_on_screen"] and r["sixteen_sizes"][0][0] >= 150  # 8 pairs still big
    assert r["eight_pairs_done"]  # every one of the sixteen cards took its tap
    started, stopped = events(r, "activity_started"), events(r, "activity_stopped")
    assert started == [{"activity": "memory", "resident_id": "r1"}] * 2
    assert [(s["pairs_found"], s["games_finished"], s["pictures"]) for s in stopped] == [
        (4, 1, "builtin"),
        (8, 1, "builtin"),
    ]
    assert all(s["duration_s"] > 0 for s in stopped)


@pytest.mark.ui
def test_slideshow_shows_cached_photos_with_arrows_caption_new_and_one_heart(
    activity_results: dict[str, dict[str, Any]],
) -> None:
    r = scenario(activity_results, "photos")
    assert r["first"] == {
        "source": r["expected_first"],
        "caption": "Ton anniversaire, avec toute la famille",
        "sender": "De la part de Marie Dupont",
        "position": "1 sur 4",
        "new": "Nouveau",
    }
    assert all(w >= 96 and h >= 96 for w, h in r["arrows"])
    assert (
        r["second"]["caption"] == "Le jardin au printemps" and r["second"]["position"] == "2 sur 4"
    )
    assert r["back_to_first"] == r["first"]
    assert r["last"]["position"] == "4 sur 4" and r["last"]["new"] is False  # seen before
    assert r["third"]["caption"] == "De la part de Marie Dupont"  # no caption: who sent it
    # Two taps on "J'aime": one heart, and a calm sentence.
    assert events(r, "photo_heart") == [{"photo_id": "p1", "resident_id": "r1"}]
    assert r["heart_text"] == "Marie Dupont saura que vous l'aimez"
    stopped = events(r, "activity_stopped")
    assert stopped[0] == {
        "activity": "photos",
        "resident_id": "r1",
        "duration_s": stopped[0]["duration_s"],
        "photos": 4,
        "photos_seen": 4,
        "hearts": 1,
    }
    # Opened again: nothing is new any more, the heart is remembered.
    assert r["reopened"]["new"] is False
    assert r["reopened_heart_text"] == r["heart_text"]


@pytest.mark.ui
def test_memory_game_uses_family_thumbnails_when_there_are_enough(
    activity_results: dict[str, dict[str, Any]],
) -> None:
    r = scenario(activity_results, "photos")
    assert r["family_pictures"] == "family"
    assert r["family_faces"] == r["expected_family_faces"]
    assert events(r, "activity_stopped")[-1]["pictures"] == "family"


@pytest.mark.ui
def test_day_and_time_in_the_residents_language_and_not_for_children(
    activity_results: dict[str, dict[str, Any]],
) -> None:
    r = scenario(activity_results, "clock")
    # Read just before and just after the screen opened: the minute may have turned between.
    assert r["shown_fr"] in r["expected_fr"]
    assert r["tiles_en"] == ["Family photos", "Pairs game", "Day and time"]
    assert r["shown_en"][0] in r["expected_en_weekdays"] and r["back_text_en"] == "Back"
    assert r["youth_tiles"] == ["photos", "memory"]
    assert r["empty_text"].startswith("Pas encore de photos.")
    assert [e["activity"] for e in events(r, "activity_stopped")] == ["clock", "clock", "photos"]
