"""The memory game on screen: choose 4, 6 or 8 pairs, turn cards over, a warm word at the end.

The rules are :class:`kiosk.activities.MemoryGame` (pure, unit-tested); this screen only shows
them. Two cards that do not match stay up for a moment, then turn back by themselves (or at
the next touch). No timer, no score, no failure. A pair found gets a soft chime; the end, a
warm sentence with "Rejouer" and "Retour".
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from kivy.animation import Animation
from kivy.clock import Clock
from kivy.metrics import dp
from kivy.properties import BooleanProperty, NumericProperty, OptionProperty, StringProperty
from kivy.uix.anchorlayout import AnchorLayout
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.floatlayout import FloatLayout
from kivymd.uix.boxlayout import MDBoxLayout

from kiosk.activities import MemoryGame, card_grid, choose_faces
from kiosk.i18n import _
from screens.activities.base import ActivityContext, ActivityScreen

KV_FILE = Path(__file__).with_suffix(".kv")
COVER_SECONDS = 2.5  # a non-matching pair stays up this long: time to look at both
HALF_FLIP_SECONDS = 0.16
CARD_SPACING = dp(16)


class StageGate:
    """A stage's layer ("how many pairs", the cards, "well done") that takes no touch while
    another stage is shown. Taking no room is not enough: a hidden layer's buttons keep their
    own minimum size, and the hidden "Other number of cards", on top of the cards, sent a game
    of eight pairs back to "how many pairs" when a finger touched the card under it."""

    shown = BooleanProperty(False)

    def on_touch_down(self, touch: Any) -> bool:
        return bool(self.shown and super().on_touch_down(touch))  # type: ignore[misc]

    def on_touch_move(self, touch: Any) -> bool:
        return bool(self.shown and super().on_touch_move(touch))  # type: ignore[misc]

    def on_touch_up(self, touch: Any) -> bool:
        return bool(self.shown and super().on_touch_up(touch))  # type: ignore[misc]


class StageBox(StageGate, MDBoxLayout):
    """The "how many pairs" and "well done" layers."""


class StageAnchor(StageGate, AnchorLayout):
    """The cards' layer."""


class MemoryCard(ButtonBehavior, FloatLayout):
    """One card: a plain blue back, or its picture; turns over with a gentle squeeze."""

    index = NumericProperty(0)
    face = StringProperty("")
    showing_face = BooleanProperty(False)
    matched = BooleanProperty(False)
    flip_scale = NumericProperty(1.0)

    def turn(self, face_up: bool) -> None:
        if face_up == self.showing_face and self.flip_scale == 1.0:
            return
        Animation.cancel_all(self, "flip_scale")
        closing = Animation(flip_scale=0.0, duration=HALF_FLIP_SECONDS, t="in_sine")
        closing.bind(on_complete=lambda *_a: setattr(self, "showing_face", face_up))
        opening = Animation(flip_scale=1.0, duration=HALF_FLIP_SECONDS, t="out_sine")
        (closing + opening).start(self)


class MemoryScreen(ActivityScreen):
    """``stage``: "choose" (how many pairs), "play", "done"."""

    stage = OptionProperty("choose", options=("choose", "play", "done"))
    message = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        self.context: ActivityContext | None = None
        self.game: MemoryGame | None = None
        self.rng = random.Random()
        self.pictures = "builtin"
        self.games_finished = 0
        self.pairs_found_total = 0
        self._cover_event: Any = None
        super().__init__(**kwargs)
        self.bind(size=self._layout_cards)

    # --- host ---------------------------------------------------------------------------------

    def begin(self, context: ActivityContext) -> None:
        super().begin(context)
        self.context = context
        self.games_finished = self.pairs_found_total = 0
        self.game = None
        self.stage = "choose"
        self.message = ""
        self._clear_cards()

    def end(self) -> None:
        self._cancel_cover()

    def figures(self) -> dict[str, Any]:
        game = self.game
        found = self.pairs_found_total + (game.pairs_found if game and not game.finished else 0)
        return {
            "pairs": game.pairs if game else 0,
            "pairs_found": found,
            "games_finished": self.games_finished,
            "pictures": self.pictures,
        }

    def refresh_texts(self) -> None:
        self._say()

    # --- play ---------------------------------------------------------------------------------

    def start_game(self, pairs: int) -> None:
        context = self.context or ActivityContext(resident_id="")
        family = [str(p.get("thumb") or "") for p in context.photos]
        faces, self.pictures = choose_faces(family, context.builtin_pictures, pairs, self.rng)
        self.game = MemoryGame(faces, self.rng)
        self._cancel_cover()
        self._clear_cards()
        grid = self.ids.cards
        for index, card in enumerate(self.game.cards):
            widget = MemoryCard(index=index, face=card.face)
            widget.bind(on_release=lambda w: self.card_tapped(int(w.index)))
            grid.add_widget(widget)
        self.stage = "play"
        self._say("start")
        self._layout_cards()

    def play_again(self) -> None:
        pairs = self.game.pairs if self.game else 4
        self.start_game(pairs)

    def choose_again(self) -> None:
        self._cancel_cover()
        self._clear_cards()
        self.stage = "choose"

    def card_tapped(self, index: int) -> None:
        game = self.game
        if game is None or self.stage != "play":
            return
        flip = game.flip(index)
        if flip.result == "ignored":
            return
        self._cancel_cover()
        widgets = self.cards()
        for covered in flip.covered:
            widgets[covered].turn(False)
        widgets[index].turn(True)
        if flip.result == "match":
            for i, card in enumerate(game.cards):
                widgets[i].matched = card.matched
            if self.context is not None:
                self.context.chime()
            if game.finished:
                self.games_finished += 1
                self.pairs_found_total += game.pairs
                Clock.schedule_once(lambda _dt: self._finish(), HALF_FLIP_SECONDS * 2 + 0.5)
            else:
                self._say("pair")
        elif flip.result == "no_match":
            self._say("again")
            self._cover_event = Clock.schedule_once(lambda _dt: self._cover(), COVER_SECONDS)
        else:
            self._say("start")

    def cards(self) -> list[MemoryCard]:
        """The cards in game order (for the game and the tests)."""
        return [w for w in reversed(self.ids.cards.children) if isinstance(w, MemoryCard)]

    def _finish(self) -> None:
        if self.game is not None and self.game.finished and self.stage == "play":
            self.stage = "done"
            self._say("done")

    def _cover(self) -> None:
        self._cover_event = None
        if self.game is None:
            return
        widgets = self.cards()
        for index in self.game.cover():
            widgets[index].turn(False)

    def _cancel_cover(self) -> None:
        if self._cover_event is not None:
            self._cover_event.cancel()
            self._cover_event = None

    def _clear_cards(self) -> None:
        if "cards" in self.ids:
            self.ids.cards.clear_widgets()
            # An empty grid of no size: a disabled widget swallows the touches it covers.
            self.ids.cards.size = (0, 0)

    def _say(self, what: str | None = None) -> None:
        if what is not None:
            self._said = what
        said = getattr(self, "_said", "")
        self.message = {
            "start": _("Find the pairs: touch two cards."),
            "pair": _("Well done, a pair!"),
            "again": _("Not the same picture. Touch another card."),
            "done": _("Well done! All the pairs are found."),
        }.get(said, "")

    def _layout_cards(self, *_args: Any) -> None:
        grid = self.ids.get("cards")
        if grid is None or self.game is None:
            return
        area = self.ids.table
        width, height = max(area.width, dp(200)), max(area.height, dp(200))
        columns, rows = card_grid(len(self.game.cards), width, height)
        side = min(
            (width - CARD_SPACING * (columns - 1)) / columns,
            (height - CARD_SPACING * (rows - 1)) / rows,
        )
        grid.cols = columns
        grid.col_default_width = grid.row_default_height = side
        grid.size = (
            columns * side + CARD_SPACING * (columns - 1),
            rows * side + CARD_SPACING * (rows - 1),
        )
