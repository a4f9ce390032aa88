"""The supervised call's keypad: "A member of staff must type their code".

Shown before a supervised call is dialled, or before an incoming one is answered (policy
``supervised``). The resident sees the relative's name and why the call waits; a member of staff
types their PIN on big keys and touches "OK" (``on_pin_entered``); "Cancel" gives up the call
(``on_cancel_requested``). The app sets ``status`` from the engine's ``supervision`` and
``pin_error``; the typed digits show as dots only, and are forgotten once sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from kiosk.calls.model import Direction, Supervision
from screens.call.common import CallScreen
from screens.call.sentences import supervise_status, supervise_title

KV_FILE = Path(__file__).with_suffix(".kv")

MIN_PIN = 4
MAX_PIN = 8
KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "erase", "0", "ok")


class SupervisionScreen(CallScreen):
    """A big PIN keypad for a member of staff, in front of the call it allows."""

    __events__ = ("on_pin_entered", "on_cancel_requested")

    contact_name = StringProperty("")
    direction = StringProperty(Direction.OUTGOING)
    title = StringProperty("")
    pin = StringProperty("")
    dots = StringProperty("")
    # kiosk.calls.model.Supervision (checking: the backend checks the PIN), with the last
    # PIN's error if any.
    supervision = StringProperty(Supervision.REQUIRED)
    pin_error = StringProperty("")
    attempts_left = NumericProperty(3)
    status = StringProperty("")
    checking = BooleanProperty(False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bind(
            contact_name=self._update_texts,
            supervision=self._update_texts,
            pin_error=self._update_texts,
            attempts_left=self._update_texts,
            direction=self._update_texts,
        )
        self._update_texts()

    def show(
        self,
        *,
        contact_name: str,
        direction: str,
        supervision: str,
        pin_error: str | None,
        attempts_left: int,
    ) -> None:
        self.contact_name = contact_name
        self.direction = direction
        self.supervision = supervision
        self.pin_error = pin_error or ""
        self.attempts_left = attempts_left
        self.checking = supervision == Supervision.CHECKING
        if supervision != Supervision.CHECKING:
            self.pin = ""

    def refresh_texts(self) -> None:
        self._update_texts()

    def _update_texts(self, *_args: Any) -> None:
        self.title = supervise_title(self.contact_name, self.direction)
        self.status = supervise_status(
            self.supervision, self.pin_error or None, int(self.attempts_left)
        )

    def on_pin(self, _instance: Any, pin: str) -> None:
        self.dots = " ".join("•" for _ in pin)

    def on_pre_enter(self, *args: Any) -> None:
        super().on_pre_enter(*args)
        self.pin = ""

    def press_key(self, key: str) -> None:
        if self.checking:
            return
        if key == "erase":
            self.pin = self.pin[:-1]
        elif key == "ok":
            if len(self.pin) >= MIN_PIN:
                pin, self.pin = self.pin, ""
                self.checking = True
                self.dispatch("on_pin_entered", pin)
        elif key.isdigit() and len(self.pin) < MAX_PIN:
            self.pin += key

    def cancel_released(self) -> None:
        if self.accepts_taps():
            self.dispatch("on_cancel_requested")

    def on_pin_entered(self, pin: str) -> None:
        """Default handler: the app binds to this event."""

    def on_cancel_requested(self) -> None:
        """Default handler: the app binds to this event."""
