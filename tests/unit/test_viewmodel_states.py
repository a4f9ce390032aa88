"""Each tile's state at a fixed moment: available, "Demain à 14 h", offline; night; DST dates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kiosk import i18n
from kiosk.viewmodel import (
    home_sections,
    idle_return_seconds,
    is_night,
    night_part,
    picker_choices,
    tile_availability,
    when_text,
)

PARIS = ZoneInfo("Europe/Paris")
AFTERNOONS = {"windows": [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "14:00", "end": "18:00"}]}
QUIET = {"quiet_hours": {"start": "20:00", "end": "09:00"}}


@pytest.fixture(autouse=True)
def french() -> Iterator[None]:
    i18n.set_language("fr")
    yield
    i18n.set_language("fr")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def config(policies: list[dict[str, Any] | None], **extra: Any) -> dict[str, Any]:
    return {
        "home": {"timezone": "Europe/Paris"},
        "residents": [
            {
                "id": "r1",
                "first_name": "Jeanne",
                "kind": "senior",
                "contacts": [
                    {
                        "id": f"c{i}",
                        "approval_id": f"ap-{i}",
                        "display_name": f"Contact {i}",
                        "relation": "",
                        "policy": p,
                    }
                    for i, p in enumerate(policies)
                ],
            },
            {"id": "y1", "first_name": "Léa", "kind": "youth", "pin_hash": "h", "contacts": []},
        ],
        **extra,
    }


def test_inside_the_window_is_available() -> None:
    assert tile_availability(
        AFTERNOONS, now=paris(2026, 11, 23, 15, 0), timezone="Europe/Paris", online=True
    ) == ("available", "")


def test_after_the_window_says_tomorrow_at_14_h() -> None:
    assert tile_availability(
        AFTERNOONS, now=paris(2026, 11, 23, 19, 0), timezone="Europe/Paris", online=True
    ) == ("later", "Demain à 14 h")


def test_before_the_window_says_today() -> None:
    assert tile_availability(
        AFTERNOONS, now=paris(2026, 11, 23, 10, 0), timezone="Europe/Paris", online=True
    ) == ("later", "Aujourd'hui à 14 h")


def test_weekend_only_says_the_day() -> None:
    saturday = {"windows": [{"days": [5], "start": "10:30", "end": "12:00"}]}
    # Monday 23 November 2026 -> Saturday 28.
    availability, when = tile_availability(
        saturday, now=paris(2026, 11, 23, 15, 0), timezone="Europe/Paris", online=True
    )
    assert availability == "later"
    assert when == "Samedi à 10 h 30"


def test_offline_marks_callable_tiles_only() -> None:
    now = paris(2026, 11, 23, 19, 0)
    assert tile_availability(None, now=now, timezone="Europe/Paris", online=False) == (
        "offline",
        "",
    )
    assert tile_availability(AFTERNOONS, now=now, timezone="Europe/Paris", online=False)[0] == (
        "later"
    )


def test_a_policy_nobody_can_read_is_not_now() -> None:
    assert tile_availability(
        {"windows": "often"}, now=paris(2026, 11, 23, 15), timezone="Europe/Paris", online=True
    ) == ("later", "Pas maintenant")


def test_english() -> None:
    i18n.set_language("en")
    assert tile_availability(
        AFTERNOONS, now=paris(2026, 11, 23, 19, 0), timezone="Europe/Paris", online=True
    )[1].startswith("Tomorrow at 14")


def test_spring_forward_night_keeps_the_local_hour() -> None:
    # 29 March 2026: clocks go from 02:00 to 03:00 in Paris. A 09:00 window opens at 09:00 local,
    # that is 07:00 UTC (not 08:00), and the tile says "Aujourd'hui à 9 h".
    morning = {"windows": [{"start": "09:00", "end": "10:00"}]}
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 Paris, before the change
    assert when_text(datetime(2026, 3, 29, 7, 0, tzinfo=UTC), now=now, timezone="Europe/Paris") == (
        "Aujourd'hui à 9 h"
    )
    assert tile_availability(morning, now=now, timezone="Europe/Paris", online=True) == (
        "later",
        "Aujourd'hui à 9 h",
    )


def test_autumn_back_evening_says_tomorrow_at_the_same_local_hour() -> None:
    # 25 October 2026: clocks go back at 03:00 -> 02:00. Saturday 20:00 -> Sunday 14:00 local.
    now = paris(2026, 10, 24, 20, 0)
    assert tile_availability(AFTERNOONS, now=now, timezone="Europe/Paris", online=True) == (
        "later",
        "Demain à 14 h",
    )


def test_home_sections_carry_states_and_filter_the_resident() -> None:
    data = config([None, AFTERNOONS])
    sections = home_sections(
        data, ["r1"], {"c0": "/p.png"}, now=paris(2026, 11, 23, 19), online=True
    )
    assert [s["resident_id"] for s in sections] == ["r1"]
    tiles = sections[0]["tiles"]
    assert [(t["approval_id"], t["availability"], t["when"]) for t in tiles] == [
        ("ap-0", "available", ""),
        ("ap-1", "later", "Demain à 14 h"),
    ]
    assert tiles[0]["photo"] == "/p.png"
    # Léa's contacts are never in Jeanne's home, and the other way round.
    assert home_sections(data, ["y1"], now=paris(2026, 11, 23, 19), online=True)[0]["tiles"] == []
    assert len(home_sections(data, None, now=paris(2026, 11, 23, 19), online=True)) == 2


def test_night_window_default_is_21_to_8() -> None:
    data = config([None])
    assert not is_night(data, None, paris(2026, 11, 23, 20, 59))
    assert is_night(data, None, paris(2026, 11, 23, 21, 0))
    assert is_night(data, None, paris(2026, 11, 24, 7, 59))
    assert not is_night(data, None, paris(2026, 11, 24, 8, 0))


def test_night_window_from_config() -> None:
    data = config([None], kiosk={"night": {"start": "23:00", "end": "06:30"}})
    assert not is_night(data, None, paris(2026, 11, 23, 22, 0))
    assert is_night(data, None, paris(2026, 11, 24, 6, 0))


def test_night_when_every_contact_is_quiet() -> None:
    data = config([QUIET, QUIET], kiosk={"night": {"start": "23:00", "end": "06:30"}})
    assert is_night(data, ["r1"], paris(2026, 11, 23, 20, 30))
    # One contact still reachable: not night for Jeanne.
    data = config([QUIET, None], kiosk={"night": {"start": "23:00", "end": "06:30"}})
    assert not is_night(data, ["r1"], paris(2026, 11, 23, 20, 30))


def test_night_across_the_autumn_change() -> None:
    # 02:30 happens twice on 25 October 2026: it is night both times.
    data = config([None])
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert is_night(data, None, first) and is_night(data, None, second)


def test_idle_return_from_config() -> None:
    assert idle_return_seconds(None, 120) == 120
    assert idle_return_seconds({"kiosk": {"idle_return_s": 2}}, 120) == 2
    assert idle_return_seconds({"kiosk": {"idle_return_s": 0}}, 120) == 120
    assert idle_return_seconds({"kiosk": {"idle_return_s": True}}, 120) == 120


def test_picker_choices_never_carry_the_pin_hash() -> None:
    choices = picker_choices(config([None]), {"y1": "/lea.png"})
    assert choices == [
        {
            "resident_id": "r1",
            "name": "Jeanne",
            "kind": "senior",
            "initials": "J",
            "photo": "",
            "needs_pin": False,
        },
        {
            "resident_id": "y1",
            "name": "Léa",
            "kind": "youth",
            "initials": "L",
            "photo": "/lea.png",
            "needs_pin": True,
        },
    ]


def test_the_night_line_says_tomorrow_only_in_the_evening() -> None:
    # 23:30 and 21:00: "we will call tomorrow"; after midnight, "it is night, we will call this
    # morning"; 06:30 (the night ends this morning) and a nap's quiet hours at 14:00: later today.
    assert night_part(paris(2026, 11, 23, 23, 30)) == "evening"
    assert night_part(paris(2026, 11, 23, 17, 0)) == "evening"
    assert night_part(paris(2026, 11, 24, 0, 10)) == "night"
    assert night_part(paris(2026, 11, 24, 4, 59)) == "night"
    assert night_part(paris(2026, 11, 24, 5, 0)) == "morning"
    assert night_part(paris(2026, 11, 24, 6, 30)) == "morning"
    assert night_part(paris(2026, 11, 24, 14, 0)) == "day"
