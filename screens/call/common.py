"""Pieces shared by the call screens: the big call button, the relative's picture, the screen
base, the sounds they play (``SoundFile``: the ringtone, kiosk.speech's spoken sentences).

``CallScreen`` ignores the buttons for a moment after it appears: a resident with tremor often
touches twice, and the second touch must not hang up the call the first one answered.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kivy.properties import OptionProperty, StringProperty
from kivymd.uix.card import MDCard
from kivymd.uix.relativelayout import MDRelativeLayout
from kivymd.uix.screen import MDScreen

log = logging.getLogger(__name__)

TAP_GUARD_SECONDS = 0.8


class CallButton(MDCard):
    """A huge green ("answer") or red ("end") button with one word on it."""

    text = StringProperty("")
    kind = OptionProperty("end", options=("answer", "end"))


class ContactPicture(MDRelativeLayout):
    """The relative's photo, or a big circle with their initials when there is none."""

    photo = StringProperty("")
    initials = StringProperty("")


class SoundFile:
    """A sound file played through Kivy (a spoken sentence, the ringtone); every failure only
    means silence. Loaded once per path."""

    def __init__(self) -> None:
        self._sound: Any = None
        self._path = ""

    def play(self, path: str, *, loop: bool = False) -> float:
        """Start playing ``path``; how long it lasts (0.0: it is not heard)."""
        if path != self._path:
            self.stop()
            self._path, self._sound = path, None
            try:
                from kivy.core.audio import SoundLoader

                self._sound = SoundLoader.load(path)
            except Exception:
                log.warning("could not load the sound %s: silence", path, exc_info=True)
        sound = self._sound
        if sound is None or not sound.length:
            return 0.0
        sound.loop = loop
        sound.play()
        return float(sound.length)

    def stop(self) -> None:
        if self._sound is not None:
            self._sound.stop()


class CallScreen(MDScreen):
    """Base of the call screens: taps on its buttons count only once it has been shown a moment."""

    def __init__(self, **kwargs: Any) -> None:
        self._shown_at = 0.0
        super().__init__(**kwargs)

    def on_pre_enter(self, *_args: Any) -> None:
        self._shown_at = time.monotonic()

    def accepts_taps(self) -> bool:
        """False right after the screen appeared (a tremor's second touch)."""
        return time.monotonic() - self._shown_at >= TAP_GUARD_SECONDS

    def refresh_texts(self) -> None:
        """Re-translate the texts set from Python (after a language change)."""
