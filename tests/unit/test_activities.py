"""The pure parts of the activities: the memory game played to the end, the day-and-time phrases,
the card grid, and the plug-in registry's discovery (no window needed)."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kiosk.activities import (
    PAIR_CHOICES,
    MemoryGame,
    card_grid,
    choose_faces,
    day_and_time,
)

PARIS = ZoneInfo("Europe/Paris")


def partner(game: MemoryGame, index: int) -> int:
    pair = game.cards[index].pair
    return next(i for i, c in enumerate(game.cards) if c.pair == pair and i != index)


@pytest.mark.parametrize("pairs", PAIR_CHOICES)
def test_a_game_is_played_to_the_end_with_no_failure(pairs: int) -> None:
    game = MemoryGame([f"face-{n}" for n in range(pairs)], random.Random(pairs))
    assert len(game.cards) == 2 * pairs
    assert sorted(c.pair for c in game.cards) == sorted(list(range(pairs)) * 2)
    # A wrong try first: the two cards stay up until the next touch, nothing is lost.
    first = 0
    wrong = next(i for i in range(1, len(game.cards)) if game.cards[i].pair != game.cards[0].pair)
    assert game.flip(first).result == "shown"
    assert game.flip(wrong).result == "no_match"
    assert game.waiting_to_cover == (first, wrong)
    assert game.flip(wrong).result == "ignored"  # touching an up card again does nothing
    while not game.finished:
        index = next(i for i, c in enumerate(game.cards) if not c.matched and not c.face_up)
        shown = game.flip(index)
        assert shown.result == "shown"
        assert game.flip(partner(game, index)).result == "match"
    assert game.pairs_found == pairs
    assert game.turns == pairs + 1
    assert game.flip(0).result == "ignored"  # a finished game takes no more touches


def test_the_next_touch_covers_a_wrong_pair_first() -> None:
    game = MemoryGame(["a", "b", "c", "d"], random.Random(1))
    a0 = next(i for i, c in enumerate(game.cards) if c.face == "a")
    b0 = next(i for i, c in enumerate(game.cards) if c.face == "b")
    c0 = next(i for i, c in enumerate(game.cards) if c.face == "c")
    game.flip(a0)
    game.flip(b0)
    third = game.flip(c0)
    assert third.result == "shown" and set(third.covered) == {a0, b0}
    assert not game.cards[a0].face_up and not game.cards[b0].face_up
    assert game.cover() == ()  # nothing left to cover


def test_cover_turns_a_wrong_pair_back() -> None:
    game = MemoryGame(["a", "b"], random.Random(3))
    a0 = next(i for i, c in enumerate(game.cards) if c.face == "a")
    b0 = next(i for i, c in enumerate(game.cards) if c.face == "b")
    game.flip(a0)
    game.flip(b0)
    assert set(game.cover()) == {a0, b0}
    assert not any(c.face_up for c in game.cards)


def test_family_photos_are_used_when_there_are_enough() -> None:
    rng = random.Random(0)
    builtin = [f"b{n}" for n in range(12)]
    faces, source = choose_faces(["f1", "f2", "f3", "f4", "f4", ""], builtin, 4, rng)
    assert source == "family" and sorted(faces) == ["f1", "f2", "f3", "f4"]
    faces, source = choose_faces(["f1", "f2", "f3"], builtin, 4, rng)
    assert source == "builtin" and len(set(faces)) == 4 and set(faces) <= set(builtin)
    with pytest.raises(ValueError):
        choose_faces([], builtin[:3], 4, rng)


def test_card_grid_gives_big_cards_without_an_empty_row() -> None:
    assert card_grid(8, 1232, 640) == (4, 2)
    assert card_grid(12, 1232, 640) == (4, 3)
    columns, rows = card_grid(16, 1232, 640)
    assert columns * rows >= 16 and columns * rows - 16 < columns
    assert min(1232 / columns, 640 / rows) >= 150


@pytest.mark.parametrize(
    ("when", "language", "sentence"),
    [
        (
            datetime(2026, 11, 24, 10, 30, tzinfo=PARIS),
            "fr",
            "mardi 24 novembre 2026 — 10 h 30 — le matin",
        ),
        (
            datetime(2026, 11, 24, 10, 30, tzinfo=PARIS),
            "en",
            "Tuesday 24 November 2026 — 10:30 — in the morning",
        ),
        (
            datetime(2026, 3, 1, 15, 0, tzinfo=PARIS),
            "fr",
            "dimanche 1er mars 2026 — 15 h — l'après-midi",
        ),
        (
            datetime(2026, 3, 1, 15, 0, tzinfo=PARIS),
            "en",
            "Sunday 1 March 2026 — 15:00 — in the afternoon",
        ),
        (
            datetime(2026, 8, 15, 19, 5, tzinfo=PARIS),
            "fr",
            "samedi 15 août 2026 — 19 h 05 — le soir",
        ),
        (
            datetime(2026, 8, 15, 23, 40, tzinfo=PARIS),
            "en",
            "Saturday 15 August 2026 — 23:40 — at night",
        ),
        (
            datetime(2026, 12, 31, 4, 59, tzinfo=PARIS),
            "fr",
            "jeudi 31 décembre 2026 — 4 h 59 — la nuit",
        ),
        (
            datetime(2026, 12, 31, 5, 0, tzinfo=PARIS),
            "fr",
            "jeudi 31 décembre 2026 — 5 h — le matin",
        ),
        (
            datetime(2026, 12, 31, 12, 0, tzinfo=PARIS),
            "de",
            "jeudi 31 décembre 2026 — 12 h — l'après-midi",
        ),
    ],
)
def test_day_and_time_phrases(when: datetime, language: str, sentence: str) -> None:
    assert day_and_time(when, language).sentence == sentence


def test_day_and_time_parts() -> None:
    phrases = day_and_time(datetime(2026, 11, 24, 10, 30, tzinfo=PARIS), "fr")
    assert (phrases.weekday, phrases.date, phrases.time, phrases.part) == (
        "mardi",
        "24 novembre 2026",
        "10 h 30",
        "le matin",
    )
