"""What every activity screen shares: the context it is opened with, "Retour", the home's row.

An activity screen never sees the core. The host gives it an :class:`ActivityContext` (who,
which language, the photos on the tablet, and a few functions: mark a photo seen, send a heart,
play the chime) in :meth:`ActivityScreen.begin`; the screen dispatches ``on_back_requested``
when the resident touches "Retour", and returns its own figures for ``activity_stopped``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kivy.metrics import dp
from kivy.properties import ColorProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.screen import MDScreen

from screens.components import palette

KV_FILE = Path(__file__).with_suffix(".kv")
ASSETS = Path(__file__).resolve().parents[2] / "kiosk" / "assets"
BUILTIN_PICTURES = sorted(str(p) for p in (ASSETS / "pictures").glob("*.png"))
CHIME = ASSETS / "chime.wav"


def _nothing(*_args: Any) -> Any:
    return None


@dataclass
class ActivityContext:
    """Who opened an activity, and what the activity may use."""

    resident_id: str
    resident_name: str = ""
    audience: str = "senior"  # "senior" | "youth"
    language: str = "fr"
    timezone: str = "Europe/Paris"
    photos: list[dict[str, Any]] = field(default_factory=list)  # PhotoCache.shown()
    builtin_pictures: list[str] = field(default_factory=lambda: list(BUILTIN_PICTURES))
    mark_seen: Callable[[str], None] = _nothing  # photo id
    send_heart: Callable[[str], bool] = lambda _photo_id: False  # True: sent now
    chime: Callable[[], None] = _nothing


class ActivityScreen(MDScreen):
    """The base of every activity's screen: ``begin``, ``figures``, and "Retour"."""

    __events__ = ("on_back_requested",)

    look = StringProperty("senior")

    def begin(self, context: ActivityContext) -> None:
        """Called by the host before the screen is shown."""
        self.look = context.audience

    def end(self) -> None:
        """Called by the host once the screen is left (by "Retour", a call, the picker)."""

    def figures(self) -> dict[str, Any]:
        """The activity's own figures for ``activity_stopped`` (photos seen, pairs found...)."""
        return {}

    def refresh_texts(self) -> None:
        """Re-translate texts set from Python (the kv ones follow ``app.language``)."""

    def back(self) -> None:
        self.dispatch("on_back_requested")

    def on_back_requested(self) -> None:
        """Default handler: the host binds to this event."""


class ActivityTile(ButtonBehavior, BoxLayout):
    """One activity on the home: a big icon and its name; a tap dispatches ``on_release``."""

    key = StringProperty("")
    name = StringProperty("")
    icon = StringProperty("")
    # The card's colours now (named as KivyMD's, which the a11y walker and tests read).
    md_bg_color = ColorProperty(palette.TILE)
    line_color = ColorProperty(palette.TILE_BORDER)
    line_width = NumericProperty(dp(1.5))
    corner = NumericProperty(dp(24))


class ActivityRow(MDBoxLayout):
    """The home's row of activity tiles, fed plain dicts (``key``, ``name``, ``icon``)."""

    __events__ = ("on_activity_chosen",)

    tiles = ListProperty()

    def on_tiles(self, *_args: Any) -> None:
        self.clear_widgets()
        for tile in self.tiles:
            widget = ActivityTile(key=tile["key"], name=tile["name"], icon=tile["icon"])
            widget.bind(on_release=lambda w: self.dispatch("on_activity_chosen", w.key))
            self.add_widget(widget)

    def tile_widgets(self) -> list[ActivityTile]:
        return [w for w in reversed(self.children) if isinstance(w, ActivityTile)]

    def on_activity_chosen(self, key: str) -> None:
        """Default handler: the host binds to this event."""
