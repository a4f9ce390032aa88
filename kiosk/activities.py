"""The pure parts of the tablet's activities: the memory game's rules and the day-and-time phrases.

No Kivy: ``screens/activities/`` shows what these compute, and the unit tests play them.

Memory game: no timer, no failure, no score shown. Two cards that do not match stay face up
until the resident touches another card (or the screen covers them after a moment); a third
touch never counts against anyone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

PAIR_CHOICES = (4, 6, 8)


@dataclass
class Card:
    """One card on the table: ``face`` is a picture (a file path), ``pair`` its pair number."""

    face: str
    pair: int
    face_up: bool = False
    matched: bool = False


@dataclass(frozen=True)
class Flip:
    """What a touch did: ``result`` is "shown", "match", "no_match" or "ignored".

    ``covered`` lists the cards turned face down again first (a previous non-matching pair).
    """

    result: str
    covered: tuple[int, ...] = ()


@dataclass
class MemoryGame:
    """A game of ``len(faces)`` pairs, shuffled by ``rng`` (seeded in tests)."""

    faces: list[str]
    rng: random.Random = field(default_factory=random.Random)
    cards: list[Card] = field(init=False)
    turns: int = field(init=False, default=0)
    _up: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if len(self.faces) < 2:
            raise ValueError("a memory game needs at least two pairs")
        cards = [Card(face, pair) for pair, face in enumerate(self.faces) for _ in range(2)]
        self.rng.shuffle(cards)
        self.cards = cards

    @property
    def pairs(self) -> int:
        return len(self.faces)

    @property
    def pairs_found(self) -> int:
        return sum(1 for c in self.cards if c.matched) // 2

    @property
    def finished(self) -> bool:
        return all(c.matched for c in self.cards)

    @property
    def waiting_to_cover(self) -> tuple[int, ...]:
        """The two face-up cards of a non-matching try (empty otherwise)."""
        return tuple(self._up) if len(self._up) == 2 else ()

    def cover(self) -> tuple[int, ...]:
        """Turn a non-matching pair face down again; returns the cards turned."""
        covered = self.waiting_to_cover
        for index in covered:
            self.cards[index].face_up = False
        if covered:
            self._up = []
        return covered

    def flip(self, index: int) -> Flip:
        """The resident touched card ``index``."""
        if not 0 <= index < len(self.cards):
            return Flip("ignored")
        card = self.cards[index]
        if card.matched or (card.face_up and index in self._up):
            return Flip("ignored")
        covered = self.cover()
        card.face_up = True
        self._up.append(index)
        if len(self._up) == 1:
            return Flip("shown", covered)
        self.turns += 1
        first, second = (self.cards[i] for i in self._up)
        if first.pair == second.pair:
            first.matched = second.matched = True
            self._up = []
            return Flip("match", covered)
        return Flip("no_match", covered)


def choose_faces(
    family: list[str], builtin: list[str], pairs: int, rng: random.Random
) -> tuple[list[str], str]:
    """The pictures of a game: family thumbnails when there are enough, else built-in ones.

    Returns the faces and where they came from ("family" or "builtin").
    """
    family = list(dict.fromkeys(f for f in family if f))
    if len(family) >= pairs:
        return rng.sample(family, pairs), "family"
    if len(builtin) < pairs:
        raise ValueError(f"only {len(builtin)} built-in pictures for {pairs} pairs")
    return rng.sample(builtin, pairs), "builtin"


def card_grid(cards: int, width: float, height: float) -> tuple[int, int]:
    """Columns and rows that give ``cards`` cards the largest square-ish room in the space."""
    best = (cards, 1)
    best_side = -1.0
    for columns in range(2, cards + 1):
        rows = -(-cards // columns)
        if rows * columns - cards >= columns:
            continue  # a whole empty row
        side = min(width / columns, height / rows)
        if side > best_side + 0.5:
            best, best_side = (columns, rows), side
    return best


# --- day and time --------------------------------------------------------------------------------

_WEEKDAYS = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "fr": (
        *("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août"),
        *("septembre", "octobre", "novembre", "décembre"),
    ),
    "en": (
        *("January", "February", "March", "April", "May", "June", "July", "August"),
        *("September", "October", "November", "December"),
    ),
}
# (first hour, part of the day): the last one that starts at or before the hour applies.
_PARTS = {
    "fr": ((0, "la nuit"), (5, "le matin"), (12, "l'après-midi"), (18, "le soir"), (22, "la nuit")),
    "en": (
        (0, "at night"),
        (5, "in the morning"),
        (12, "in the afternoon"),
        (18, "in the evening"),
        (22, "at night"),
    ),
}


@dataclass(frozen=True)
class DayAndTime:
    """The day-and-time screen's lines, in one language."""

    weekday: str  # "mardi"
    date: str  # "24 novembre 2026"
    time: str  # "10 h 30"
    part: str  # "le matin"
    sentence: str  # "mardi 24 novembre 2026 — 10 h 30 — le matin"


def day_and_time(now: datetime, language: str) -> DayAndTime:
    """What day and time it is, as a resident would say it (``language`` "fr" or "en")."""
    lang = language if language in _WEEKDAYS else "fr"
    weekday = _WEEKDAYS[lang][now.weekday()]
    month = _MONTHS[lang][now.month - 1]
    if lang == "fr":
        day = "1er" if now.day == 1 else str(now.day)
        date = f"{day} {month} {now.year}"
        time = f"{now.hour} h {now.minute:02d}" if now.minute else f"{now.hour} h"
    else:
        date = f"{now.day} {month} {now.year}"
        time = f"{now.hour}:{now.minute:02d}"
    part = next(p for hour, p in reversed(_PARTS[lang]) if now.hour >= hour)
    return DayAndTime(weekday, date, time, part, f"{weekday} {date} — {time} — {part}")
