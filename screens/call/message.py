"""The calm sentence after a call, or instead of one: "Julie could not answer.", "The call is
over.", "This is not a time to call Julie. You can call again on Monday at 14 h."

The app sets the relative, the ``sentence`` and ``show_back``, and returns home by itself after a
few seconds; "Back" (shown when the resident may want to leave sooner) dispatches
``on_back_requested``.
"""

from __future__ import annotations

from pathlib import Path

from kivy.properties import BooleanProperty, StringProperty

from screens.call.common import CallScreen

KV_FILE = Path(__file__).with_suffix(".kv")


class CallMessageScreen(CallScreen):
    """A sentence about a call, with the relative's picture; never an error screen."""

    __events__ = ("on_back_requested",)

    contact_name = StringProperty("")
    photo = StringProperty("")
    initials = StringProperty("")
    sentence = StringProperty("")
    show_back = BooleanProperty(False)

    def back_released(self) -> None:
        if self.show_back and self.accepts_taps():
            self.dispatch("on_back_requested")

    def on_back_requested(self) -> None:
        """Default handler: the app binds to this event."""
