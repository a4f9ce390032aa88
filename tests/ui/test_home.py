"""The home screen under Xvfb: tiles, a tap that asks for a call, live config updates."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ui


def test_tiles_show_names_initials_and_photo(scenario):
    result = scenario("home")
    assert result["screen"] == "home"
    assert result["started"] == 1
    assert [t["name"] for t in result["tiles"]] == [
        "Marie Dupont",
        "Jean-Pierre Martin",
        "Lucie",
        "Thomas Bernard",
        "Françoise Petit",
        "Dr Moreau",
    ]
    assert [t["initials"] for t in result["tiles"]] == ["MD", "JM", "L", "TB", "FP", "DM"]
    assert [t["photo"] for t in result["tiles"]] == [True] + [False] * 5


def test_six_tiles_fit_at_1280x800_and_are_big(scenario):
    result = scenario("home")
    # Six tiles share the screen with the clock and the activities row: each stays far above the
    # 18 mm touch target (68 px at Xvfb's 96 dpi), at least twice it in both directions.
    for width, height in result["tile_sizes"]:
        assert width >= 300 and height >= 150
    assert result["all_tiles_on_screen"]


def test_tap_on_tile_dispatches_call_requested_and_records_it(scenario):
    result = scenario("home")
    # Two quick taps (tremor) on the same tile ask for one call.
    assert result["dispatched"] == ["ap-2"]
    assert result["records"] == [["call_requested", {"approval_id": "ap-2", "resident_id": "r1"}]]


def test_stored_colour_scheme_is_the_one_kivymd_computes(scenario):
    # The kiosk reads KivyMD's scheme from screens/components/scheme.json instead of computing
    # it at each start: stale after a KivyMD upgrade, regenerate it (see that module).
    assert scenario("home")["scheme_stored_is_computed"]


def test_no_offline_line_while_the_core_connects(scenario):
    # Regression: the core says "offline" until started; the app must start it first.
    assert scenario("home")["connection_text_at_start"] == ""


def test_retired_tablet_shows_nothing_of_its_residents(scenario):
    assert scenario("update")["retired_text"] == "Vos proches vont bientôt apparaître ici."


def test_escape_does_not_close_the_app(scenario):
    assert scenario("home")["alive_after_escape"] is True


def test_home_is_in_french_with_date_and_time(scenario):
    result = scenario("home")
    first_word = result["date_text"].split()[0]
    assert first_word in {"Lundi", "Mardi", "Mercredi", "Jeudi", "Vendredi", "Samedi", "Dimanche"}
    assert len(result["time_text"]) == 5 and result["time_text"][2] == ":"


def test_text_colours_reach_aaa_contrast(scenario):
    for pair, ratio in scenario("home")["contrast"].items():
        assert ratio >= 7, pair


def test_new_config_updates_home_without_restart(scenario):
    result = scenario("update")
    assert result["before"] == ["Marie Dupont", "Jean-Pierre Martin", "Lucie"]
    assert result["after"] == ["Marie Dupont", "Lucie", "Paul Girard"]
    assert result["approval_ids"] == ["ap-1", "ap-3", "ap-9"]
    assert result["old_tiles_orphaned"] is True
    # The new contact can be called at once.
    assert result["records"] == [["call_requested", {"approval_id": "ap-9", "resident_id": "r1"}]]


def test_offline_shows_a_calm_line_then_hides_it(scenario):
    result = scenario("update")
    assert result["offline_text"] == "La tablette cherche le réseau…"
    # Regression: the offline line used to rebuild every tile, which made them flicker.
    assert result["offline_kept_tiles"] is True
    assert result["online_text"] == ""


def test_several_residents_pick_themselves_and_record_the_right_resident(scenario):
    result = scenario("update")
    assert result["picker_names"] == ["Jeanne", "Marcel"]
    # Marcel's home shows Marcel's contacts only, without a heading.
    assert result["headings"] == []
    assert result["tiles_two"] == ["Thomas Bernard", "Françoise Petit"]
    assert result["records_two"] == [
        ["call_requested", {"approval_id": "ap-5", "resident_id": "r2"}]
    ]


def test_no_contact_shows_the_empty_sentence(scenario):
    result = scenario("update")
    assert result["empty_visible"] is True
    assert result["empty_text"].startswith("Aucun contact n'est encore approuvé")


def test_every_colour_pair_reaches_7_to_1_under_the_night_shade():
    # Regression: at night the initials of a greyed tile were drawn at a third of their
    # opacity under a clock icon. Every pair must hold by day and under the night's shade.
    from screens.components.a11y import blend
    from screens.components.palette import TEXT_PAIRS, contrast_ratio
    from screens.home import look as looks

    shade = looks.NIGHT_SHADE
    for name, (text, background) in {**TEXT_PAIRS, **looks.TEXT_PAIRS}.items():
        assert contrast_ratio(text, background) >= 7, name
        night = contrast_ratio(blend(shade, text), blend(shade, background))
        assert night >= 7, (name, round(night, 2))
    for look in ("senior", "youth"):
        for availability in ("available", "later", "offline"):
            colours = looks.tile_colours(look, availability, False)
            for text, background in (
                ("on_placeholder", "placeholder"),
                ("name", "background"),
                ("relation", "background"),
                ("icon", "badge"),
            ):
                ratio = contrast_ratio(
                    blend(shade, colours[text]), blend(shade, colours[background])
                )
                assert ratio >= 7, (look, availability, text, background, round(ratio, 2))


def test_a_portrait_is_drawn_from_its_tile_size_copy_once_made(scenario):
    result = scenario("tile_copies")
    first, second = result["first"], result["second"]
    # No copy at the first render: the tile draws the 640 px file itself.
    assert first["picture"] == first["photo"] and first["photo"].endswith("c1.jpg")
    # The copy made in the background, beside the photo cache's files...
    assert len(result["copies"]) == 1 and result["copies"][0].startswith("c1.jpg.")
    # ...is what the next render draws: smaller than the original, never smaller than the tile.
    assert second["photo"] == first["photo"]
    assert second["picture"] != second["photo"]
    assert second["picture"].endswith(result["copies"][0])
    assert second["source"] == second["picture"]
    assert second["texture_size"] == second["copy_size"]
    assert second["picture_side"] <= second["copy_size"][0] < 640
