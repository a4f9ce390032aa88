"""Spoken announcements on the ringing screen, heard at the tablet's speaker, under Xvfb.

``python -m tests.ui.announce_driver SCENARIO OUT_DIR``; the last line of stdout is
``RESULT:{json}`` (the runner is ``tests.ui.driver.drive``). SDL's "disk" audio driver stands in
for the sound card: everything the app plays is mixed as on a tablet and written to
``OUT_DIR/speaker.raw`` (44.1 kHz, 16-bit, stereo), which the test listens to.

* ``on`` — Jeanne's setting says "say who calls"; Julie calls: the screen gets the sentence
  synthesised by espeak-ng and rings for a while, then the call ends;
* ``off`` — the same call for a resident without the setting: the chime only;
* ``outgoing`` — Jeanne (with the setting) touches Julie's photo: "On appelle Julie", once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")
if len(sys.argv) > 2:  # before SDL opens its audio (the first sound the app loads)
    os.environ["SDL_AUDIODRIVER"] = "disk"
    os.environ["SDL_DISKAUDIOFILE"] = str(Path(sys.argv[2]) / "speaker.raw")

from kivy.config import Config  # noqa: E402

Config.set("graphics", "width", "1280")
Config.set("graphics", "height", "800")
Config.set("graphics", "resizable", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")

from kiosk.audio.hearing import HearingProfile, HearingProfiles  # noqa: E402
from kiosk.speech import wav_seconds  # noqa: E402
from screens.app import LiensApp  # noqa: E402
from screens.call.incoming import ringtone_path  # noqa: E402
from tests.ui.audio_driver import AudioCore  # noqa: E402
from tests.ui.call_driver import JULIE, THOMAS, settled  # noqa: E402
from tests.ui.driver import Steps, drive, tap, wait_until  # noqa: E402
from tests.ui.fake_core import config  # noqa: E402

RING_FOR_S = 11.0  # the sentence, three chimes, the sentence again, a chime


def jeanne(data_dir: Path, announce: bool) -> AudioCore:
    """A tablet for Jeanne alone (Julie and Thomas approved), her setting as ``announce``."""
    HearingProfiles(data_dir).set("r1", HearingProfile(announce=announce))
    return AudioCore(data_dir, config=config([("r1", "Jeanne", [JULIE, THOMAS])]))


def scenario(announce: bool) -> Callable[[Path], tuple[AudioCore, Callable[..., Steps]]]:
    def make(out_dir: Path) -> tuple[AudioCore, Callable[..., Steps]]:
        data_dir = out_dir / "data"
        core = jeanne(data_dir, announce)

        def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
            yield from wait_until(lambda: len(app.home_screen.tiles()) == 2, timeout=20)
            screen = app.incoming_screen
            announced: list[float] = []
            screen.bind(announcement=lambda _s, path: path and announced.append(time.monotonic()))
            entered: list[float] = []
            screen.bind(on_pre_enter=lambda *_a: entered.append(time.monotonic()))
            screen.bind(on_enter=lambda *_a: entered.append(time.monotonic()))
            event_at = time.monotonic()
            core.call_event("incoming", "call-in-1", resident_id="r1")
            yield from settled(app, "call_incoming")
            started = time.monotonic()
            if announce:
                yield from wait_until(lambda: bool(announced), timeout=15)
                result["announcement_after_s"] = round(announced[0] - event_at, 3)
                result["entered_after_s"] = [round(t - event_at, 3) for t in entered]
            while time.monotonic() - started < RING_FOR_S:
                yield 0.1
            result["title"] = screen.title_text
            result["announcement"] = screen.announcement
            result["announcement_s"] = (
                wav_seconds(Path(screen.announcement)) if screen.announcement else 0.0
            )
            result["ringtone"] = str(ringtone_path())
            result["speaker"] = os.environ["SDL_DISKAUDIOFILE"]
            result["speech_dir"] = str(data_dir / "speech")
            core.call_event("ended", "call-in-1", reason="missed", resident_id="r1")
            yield from settled(app, "call_message")

        return core, steps

    return make


def scenario_outgoing(out_dir: Path) -> tuple[AudioCore, Callable[..., Steps]]:
    data_dir = out_dir / "data"
    core = jeanne(data_dir, announce=True)

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 2, timeout=20)
        yield 0.5
        julie = next(t for t in app.home_screen.tiles() if t.name == "Julie")
        yield from tap(julie)
        yield from wait_until(lambda: app.manager.current == "call_outgoing", timeout=10)
        screen = app.outgoing_screen
        yield from wait_until(lambda: screen.announcement != "", timeout=15)
        started = time.monotonic()
        result["announcement"] = screen.announcement
        result["announcement_s"] = wav_seconds(Path(screen.announcement))
        result["status"] = screen.status_text
        while time.monotonic() - started < 4.0:
            yield 0.1
        result["start_calls"] = core.start_calls
        result["ringtone"] = str(ringtone_path())
        result["speaker"] = os.environ["SDL_DISKAUDIOFILE"]
        result["speech_dir"] = str(data_dir / "speech")
        core.call_event("ended", "call-out-1", direction="outgoing", reason="cancelled")
        yield from wait_until(lambda: app.manager.current != "call_outgoing", timeout=10)
        yield from wait_until(lambda: not app.manager.transition.is_active, timeout=10)
        yield 0.1
        result["announcement_after_leave"] = screen.announcement

    return core, steps


SCENARIOS = {"on": scenario(True), "off": scenario(False), "outgoing": scenario_outgoing}


def main(argv: list[str]) -> int:
    return drive(argv, SCENARIOS, timeout=120)  # a deadline (see test_announce.py)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
