"""The staff PIN screen, after the staff gesture: a big keypad, dots for the digits typed.

It only collects the PIN and dispatches ``on_pin_entered(pin)`` or ``on_back_requested``; the
staff flow checks the PIN and sets ``checking`` and ``message`` back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.properties import BooleanProperty, StringProperty
from kivymd.uix.screen import MDScreen

KV_FILE = Path(__file__).with_name("pin.kv")
MAX_DIGITS = 6


class StaffPinScreen(MDScreen):
    """The "Staff code" screen: digits, erase, OK, and a way back to the residents."""

    __events__ = ("on_pin_entered", "on_back_requested")

    pin = StringProperty("")
    dots = StringProperty("")
    message = StringProperty("")
    is_error = BooleanProperty(False)
    checking = BooleanProperty(False)

    def on_pin(self, _instance: Any, pin: str) -> None:
        self.dots = " ".join("●" for _ in pin) if pin else "– – – –"

    def on_kv_post(self, base_widget: Any) -> None:
        self.on_pin(self, self.pin)

    def reset(self) -> None:
        self.pin = ""
        self.message = ""
        self.is_error = False
        self.checking = False

    def press_key(self, key: str) -> None:
        """A keypad key: a digit, "erase" or "ok"."""
        if self.checking:
            return
        if key == "erase":
            self.pin = self.pin[:-1]
        elif key == "ok":
            if self.pin:
                pin, self.pin = self.pin, ""
                self.dispatch("on_pin_entered", pin)
        elif key.isdigit() and len(key) == 1 and len(self.pin) < MAX_DIGITS:
            self.pin += key

    def on_pin_entered(self, pin: str) -> None:
        """Default handler: the staff flow binds to this event."""

    def on_back_requested(self) -> None:
        """Default handler: the staff flow binds to this event."""
