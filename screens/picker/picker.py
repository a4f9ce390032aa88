"""The "who is using the tablet" screen: each resident's big photo (or initials) and first name.

The app's routing (``screens.picker.routing``) sets ``choices`` (``kiosk.viewmodel.
picker_choices``); a tap dispatches ``on_resident_chosen(resident_id)``. A senior's home opens
at once; a youth goes to their PIN keypad. The picker shows nobody's contacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.metrics import dp
from kivy.properties import ListProperty, StringProperty
from kivymd.uix.screen import MDScreen

from kiosk.i18n import _
from screens.components import BigTile

KV_FILE = Path(__file__).with_suffix(".kv")

CHOICE_WIDTH = dp(300)
CHOICE_HEIGHT = dp(340)


class PickerScreen(MDScreen):
    """Big tiles of the residents the tablet serves; one tap picks one."""

    __events__ = ("on_resident_chosen",)

    choices = ListProperty()
    title = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        self._rendered: list[dict[str, Any]] | None = None
        self._render_trigger = Clock.create_trigger(self._render, 0)
        super().__init__(**kwargs)
        self.bind(choices=self._render_trigger)
        self.refresh_texts()

    def on_kv_post(self, base_widget: Any) -> None:
        self._render()

    def refresh_texts(self) -> None:
        self.title = _("Who is using the tablet?")

    def _render(self, *_args: Any) -> None:
        grid = self.ids.get("choices_grid")
        if grid is None:
            return
        choices = [dict(c) for c in self.choices]
        if choices == self._rendered:
            return
        self._rendered = choices
        grid.clear_widgets()
        grid.cols = max(1, min(len(choices), 4 if len(choices) > 6 else 3))
        for choice in choices:
            tile = BigTile(
                resident_id=str(choice["resident_id"]),
                name=str(choice["name"]),
                initials=str(choice["initials"]),
                photo=str(choice.get("photo", "")),
                size_hint=(None, None),
                size=(CHOICE_WIDTH, CHOICE_HEIGHT),
            )
            tile.bind(on_release=self._on_choice_release)
            grid.add_widget(tile)

    def tiles(self) -> list[BigTile]:
        """The residents' tiles on screen, in order (for the tests)."""
        return [w for w in reversed(self.ids.choices_grid.children) if isinstance(w, BigTile)]

    def _on_choice_release(self, tile: BigTile) -> None:
        self.dispatch("on_resident_chosen", tile.resident_id)

    def on_resident_chosen(self, resident_id: str) -> None:
        """Default handler: the routing binds to this event."""
