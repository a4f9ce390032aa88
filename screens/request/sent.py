"""The confirmation after a request: a calm sentence, then home on its own (or with "Back")."""

from __future__ import annotations

from pathlib import Path

from kivymd.uix.screen import MDScreen

KV_FILE = Path(__file__).with_suffix(".kv")


class RequestSentScreen(MDScreen):
    """ "Ta demande est envoyée. Un éducateur t'en parlera." The flow brings the child home."""

    __events__ = ("on_back_requested",)

    def on_back_requested(self) -> None:
        """Default handler: the flow binds to this event."""
