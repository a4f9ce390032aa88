"""A youth's PIN keypad: "Léa, tape ton code", four dots, big keys.

The routing (``screens.picker.routing``) calls :meth:`PinScreen.show` with the child's first
name, then sets ``status`` (wrong code, lock-out, no code yet) and ``checking``; the fourth digit
dispatches ``on_pin_entered(pin)`` at once and the typed digits are forgotten. "Back" goes to
the picker (``on_back_requested``), hidden on a tablet that serves this child only. The look is
the youth home's (``screens.home.look``). The PIN itself is never shown, logged or kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.properties import BooleanProperty, StringProperty
from kivymd.uix.card import MDCard
from kivymd.uix.screen import MDScreen

from kiosk.i18n import _
from kiosk.session import PIN_LENGTH, PinCheck

KV_FILE = Path(__file__).with_suffix(".kv")

KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "erase", "0", "back")


class PinKey(MDCard):
    """One key of the keypad (``key`` is a digit, "erase" or "back")."""

    key = StringProperty("")
    text = StringProperty("")
    # Locked or checking: the key looks asleep and the screen ignores it. Not Kivy's
    # ``disabled``, whose KivyMD text colour is unreadable on the dark keypad.
    dimmed = BooleanProperty(False)


class PinScreen(MDScreen):
    """The keypad of one child; ``locked`` disables the digits and says why, calmly."""

    __events__ = ("on_pin_entered", "on_back_requested")

    resident_id = StringProperty("")
    resident_name = StringProperty("")
    title = StringProperty("")
    pin = StringProperty("")
    dots = StringProperty("")
    status = StringProperty("")
    error = BooleanProperty(False)  # the status is a wrong code or a lock-out
    locked = BooleanProperty(False)
    checking = BooleanProperty(False)
    can_go_back = BooleanProperty(True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bind(pin=self._update_dots, resident_name=self._update_texts)
        self._update_dots()
        self._update_texts()

    def show(self, *, resident_id: str, name: str, can_go_back: bool) -> None:
        """Start afresh for ``resident_id``: no digit typed, no message."""
        self.resident_id = resident_id
        self.resident_name = name
        self.can_go_back = can_go_back
        self.pin = ""
        self.checking = False
        self.show_result(None)

    def show_result(self, check: PinCheck | None) -> None:
        """What came of the last code (None: nothing yet)."""
        self.pin = ""
        self.checking = False
        self.locked = check is not None and check.result in ("locked", "no_pin")
        self.error = check is not None and check.result != "ok"
        self.status = pin_status(check)

    def refresh_texts(self) -> None:
        self._update_texts()

    def _update_texts(self, *_args: Any) -> None:
        self.title = _("{name}, type your code").format(name=self.resident_name)

    def _update_dots(self, *_args: Any) -> None:
        self.dots = " ".join("•" if i < len(self.pin) else "_" for i in range(PIN_LENGTH))

    def press_key(self, key: str) -> None:
        if key == "back":
            self.pin = ""
            self.dispatch("on_back_requested")
            return
        if self.checking or self.locked:
            return
        if key == "erase":
            self.pin = self.pin[:-1]
            return
        if not key.isdigit() or len(self.pin) >= PIN_LENGTH:
            return
        self.pin += key
        if len(self.pin) == PIN_LENGTH:
            pin, self.pin = self.pin, ""
            self.pin = "•" * PIN_LENGTH  # the dots stay full while the code is checked
            self.checking = True
            self.dispatch("on_pin_entered", pin)

    def on_pin_entered(self, pin: str) -> None:
        """Default handler: the routing binds to this event."""

    def on_back_requested(self) -> None:
        """Default handler: the routing binds to this event."""


def pin_status(check: PinCheck | None) -> str:
    """The calm sentence under the dots."""
    if check is None or check.result == "ok":
        return ""
    if check.result == "no_pin":
        return _("Your code has not been chosen yet. Ask an educator.")
    if check.result == "locked":
        minutes = max(1, -(-int(check.locked_seconds) // 60))
        return _("Too many tries. You can try again in {minutes} min. Ask an educator.").format(
            minutes=minutes
        )
    if check.attempts_left == 1:
        return _("This is not your code. One try left.")
    return _("This is not your code. {count} tries left.").format(count=check.attempts_left)
