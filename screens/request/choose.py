"""The relation screen: big buttons ("Maman", "Papa", ...), no typing, and a way back.

A tap dispatches ``on_relation_chosen(relation, who)`` once (a second tap of a shaky finger is
ignored until the screen is shown again); "Back" dispatches ``on_back_requested``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.properties import StringProperty
from kivymd.uix.screen import MDScreen

KV_FILE = Path(__file__).with_suffix(".kv")


class RequestContactScreen(MDScreen):
    """Who the child would like to call, as a relation; the kv lists the ten buttons (ids are
    the relation keys)."""

    __events__ = ("on_relation_chosen", "on_back_requested")

    resident_id = StringProperty("")
    resident_name = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        self._chosen = False
        super().__init__(**kwargs)

    def on_pre_enter(self, *_args: Any) -> None:
        self._chosen = False

    def choose(self, relation: str, who: str) -> None:
        """``relation`` is the key ("mother"), ``who`` the label's msgid ("Mum")."""
        if self._chosen:
            return
        self._chosen = True
        self.dispatch("on_relation_chosen", relation, who)

    def on_relation_chosen(self, relation: str, who: str) -> None:
        """Default handler: the flow binds to this event."""

    def on_back_requested(self) -> None:
        """Default handler: the flow binds to this event."""
