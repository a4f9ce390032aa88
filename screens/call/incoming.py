"""The incoming call screen: the caller's picture and name ("Julie is calling you"), a gentle
ringtone, a huge green "Answer" and a red "Decline", and the automatic answer countdown.

The app sets the caller and ``auto_answer_s`` (-1: none); the screen counts down from when it
is set, but only shows it: the call engine answers by itself. The ringtone is a short chime
generated once into the cache (``wave``, no binary asset in the repository); with no audio
device (Xvfb) it is simply silent.

For a resident whose setting says so (``kiosk.audio.hearing``, "say who calls"), the app hands
the screen the spoken sentence (``announce()``, a WAV from ``kiosk.speech``): the screen says it
first, then chimes, and says it again after every :data:`CHIMES_BETWEEN_ANNOUNCEMENTS` chimes,
never over a chime.
"""

from __future__ import annotations

import logging
import math
import struct
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from screens.call.common import CallScreen, SoundFile
from screens.call.sentences import countdown_text, incoming_title

log = logging.getLogger(__name__)

KV_FILE = Path(__file__).with_suffix(".kv")
COUNTDOWN_TICK = 0.2  # seconds: the number changes within a fifth of a second of its time

RINGTONE_RATE = 22050
RINGTONE_NAME = "liens-ringtone-v1.wav"
RINGTONE_SECONDS = 2.5  # one chime and its silence: the loop's period
ANNOUNCE_GAP_S = 0.4  # between the spoken name and the chime
CHIMES_BETWEEN_ANNOUNCEMENTS = 3


def write_ringtone(path: Path) -> Path:
    """A soft two-note chime (E5 then C5, 1.2 s) and 1.3 s of silence, looped by the player.

    Mid frequencies and a slow attack: audible with presbycusis, never shrill or startling.
    """
    frames = bytearray()
    notes = ((659.25, 0.0, 0.6), (523.25, 0.6, 0.6))
    total = int(RINGTONE_RATE * RINGTONE_SECONDS)
    for i in range(total):
        t = i / RINGTONE_RATE
        sample = 0.0
        for freq, start, length in notes:
            if start <= t < start + length + 0.4:
                local = t - start
                envelope = min(1.0, local / 0.04) * math.exp(-3.0 * local)
                sample += envelope * math.sin(2 * math.pi * freq * t)
        frames += struct.pack("<h", int(max(-1.0, min(1.0, sample * 0.5)) * 32767))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RINGTONE_RATE)
        out.writeframes(bytes(frames))
    tmp.replace(path)
    return path


def ringtone_path(cache_dir: Path | None = None) -> Path:
    """The ringtone's file, written on first use."""
    path = (cache_dir or Path(tempfile.gettempdir())) / RINGTONE_NAME
    if not path.exists():
        write_ringtone(path)
    return path


class Ringtone:
    """The looping ringtone (its file written on first use); every failure only means silence."""

    def __init__(self) -> None:
        self._file = SoundFile()
        self._path: str | None = None

    def play(self) -> None:
        if self._path is None:
            try:
                self._path = str(ringtone_path())
            except OSError:
                log.warning("no ringtone: the tablet will ring silently", exc_info=True)
                self._path = ""
        if self._path:
            self._file.play(self._path, loop=True)

    def stop(self) -> None:
        self._file.stop()


class IncomingCallScreen(CallScreen):
    """While the tablet rings for a relative's call."""

    __events__ = ("on_answer_requested", "on_decline_requested")

    contact_name = StringProperty("")
    photo = StringProperty("")
    initials = StringProperty("")
    auto_answer_s = NumericProperty(-1)
    countdown = NumericProperty(-1)
    answering = BooleanProperty(False)  # "Answer" touched: wait for the connection
    title_text = StringProperty("")
    countdown_text = StringProperty("")
    announcement = StringProperty("")  # the WAV that says who calls ("": the chime only)

    def __init__(self, **kwargs: Any) -> None:
        self._deadline: float | None = None
        self._tick_event: Any = None
        self._ringing = False  # shown, not yet answered or declined
        self._sound_events: list[Any] = []
        self.ringtone = Ringtone()
        self.voice = SoundFile()
        super().__init__(**kwargs)
        self.bind(contact_name=self._update_texts, countdown=self._update_texts)
        self._update_texts()

    def ring(self, *, contact_name: str, photo: str, initials: str, auto_answer_s: int) -> None:
        """Show a new incoming call; ``auto_answer_s`` < 0 means no automatic answer."""
        self.contact_name, self.photo, self.initials = contact_name, photo, initials
        self.answering = False
        self.announcement = ""  # the app hands the new caller's sentence when it is ready
        self.auto_answer_s = auto_answer_s
        self._stop_countdown()
        if auto_answer_s >= 0:
            self._deadline = time.monotonic() + auto_answer_s
            self.countdown = auto_answer_s
            self._tick_event = Clock.schedule_interval(self._tick, COUNTDOWN_TICK)
        else:
            self.countdown = -1

    def _tick(self, _dt: float) -> None:
        if self._deadline is None:
            return
        left = max(0, math.ceil(self._deadline - time.monotonic()))
        self.countdown = left
        if left == 0:
            self._stop_countdown(keep=True)

    def _stop_countdown(self, *, keep: bool = False) -> None:
        if self._tick_event is not None:
            self._tick_event.cancel()
            self._tick_event = None
        if not keep:
            self._deadline = None

    def refresh_texts(self) -> None:
        self._update_texts()

    def _update_texts(self, *_args: Any) -> None:
        self.title_text = incoming_title(self.contact_name)
        self.countdown_text = countdown_text(int(self.countdown))

    # -- sounds ---------------------------------------------------------------------------------

    def announce(self, path: str) -> None:
        """Say who calls (the WAV at ``path``) before the chimes, from now on, for this call."""
        if path == self.announcement:
            return
        self.announcement = path
        if self._ringing:
            self._say()

    def _say(self, *_args: Any) -> None:
        self._cancel_sound_events()
        if not self._ringing:
            return
        self.ringtone.stop()
        length = self.voice.play(self.announcement) if self.announcement else 0.0
        if length <= 0:
            self.ringtone.play()
            return
        chime_at = length + ANNOUNCE_GAP_S
        # The name again in the silence that ends the last chime's period, before Kivy (which
        # loops a sound from its clock) starts one more chime to be cut short.
        again_at = chime_at + CHIMES_BETWEEN_ANNOUNCEMENTS * RINGTONE_SECONDS - ANNOUNCE_GAP_S
        self._sound_events = [
            Clock.schedule_once(self._chime, chime_at),
            Clock.schedule_once(self._say, again_at),
        ]

    def _chime(self, *_args: Any) -> None:
        if self._ringing:
            self.ringtone.play()

    def _silence(self) -> None:
        self._ringing = False
        self._cancel_sound_events()
        self.voice.stop()
        self.ringtone.stop()

    def _cancel_sound_events(self) -> None:
        for event in self._sound_events:
            event.cancel()
        self._sound_events = []

    def on_enter(self, *_args: Any) -> None:
        self._ringing = True
        self._say()

    def on_leave(self, *_args: Any) -> None:
        self._silence()
        self._stop_countdown()

    def answer_released(self) -> None:
        if self.accepts_taps() and not self.answering:
            self.answering = True
            self._silence()
            self.dispatch("on_answer_requested")

    def decline_released(self) -> None:
        if self.accepts_taps() and not self.answering:
            self._silence()
            self.dispatch("on_decline_requested")

    def on_answer_requested(self) -> None:
        """Default handler: the app binds to this event."""

    def on_decline_requested(self) -> None:
        """Default handler: the app binds to this event."""
