"""The outgoing call screen: the relative's picture and name, "Calling…", then "It is ringing at
Julie's…", and one big red "Cancel".

The app sets ``contact_name``, ``photo``, ``initials`` and ``state`` ("dialling" or "ringing");
the screen dispatches ``on_cancel_requested`` when the resident touches "Cancel". For a resident
whose setting says so (``kiosk.audio.hearing``, "say who calls"), the app hands the screen the
spoken "On appelle Julie" (``announce()``): said once, as the screen appears, so that a resident
who touched the wrong photo hears it and can cancel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.properties import StringProperty

from kiosk.calls.model import CallState
from screens.call.common import CallScreen, SoundFile
from screens.call.sentences import outgoing_status

KV_FILE = Path(__file__).with_suffix(".kv")


class OutgoingCallScreen(CallScreen):
    """While the tablet calls a relative."""

    __events__ = ("on_cancel_requested",)

    contact_name = StringProperty("")
    photo = StringProperty("")
    initials = StringProperty("")
    state = StringProperty(CallState.DIALLING)
    status_text = StringProperty("")
    announcement = StringProperty("")  # the WAV that says who is called ("": none)

    def __init__(self, **kwargs: Any) -> None:
        self._shown = False
        self.voice = SoundFile()
        super().__init__(**kwargs)
        self.bind(state=self._update_texts, contact_name=self._update_texts)
        self._update_texts()

    def refresh_texts(self) -> None:
        self._update_texts()

    def _update_texts(self, *_args: Any) -> None:
        self.status_text = outgoing_status(self.state, self.contact_name)

    def announce(self, path: str) -> None:
        """Say who is called (the WAV at ``path``), once, now or as the screen appears."""
        if path == self.announcement:
            return
        self.announcement = path
        if self._shown:
            self.voice.play(path)

    def on_enter(self, *_args: Any) -> None:
        self._shown = True
        if self.announcement:
            self.voice.play(self.announcement)

    def on_leave(self, *_args: Any) -> None:
        self._shown = False
        self.voice.stop()
        self.announcement = ""  # the next call's sentence is handed anew

    def cancel_released(self) -> None:
        """The red button was touched (called from kv)."""
        if self.accepts_taps():
            self.dispatch("on_cancel_requested")

    def on_cancel_requested(self) -> None:
        """Default handler: the app binds to this event."""
