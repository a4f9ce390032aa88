"""Audio scenarios of the Liens app (docs/audio.md), run in their own process under Xvfb.

``python -m tests.ui.audio_driver SCENARIO OUT_DIR``; the last line of stdout is
``RESULT:{json}`` (the runner is ``tests.ui.driver.drive``). The core is the call scenarios'
``FakeCallCore`` with a data folder; the call's audio is the real one
(``kiosk.calls.audio.open_call_audio`` in synthetic mode: the real chain, registered as the live
call), so the in-call "+" and "−" change a real chain's gain and the resident's saved setting.

* ``incall`` — Jeanne (boost +3 dB saved) answers Julie; the in-call screen shows her level;
  "+" twice, then twice more (the second at the top does nothing), "−" once;
* ``staff`` — staff open the staff screen (gesture's PIN): the tablet's microphone, speaker and
  echo canceller, then the residents' hearing panel: Jeanne one step louder, clearer voice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.config import Config  # noqa: E402

Config.set("graphics", "width", "1280")
Config.set("graphics", "height", "800")
Config.set("graphics", "resizable", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")

from kivy.metrics import Metrics, mm  # noqa: E402
from kivy.uix.label import Label  # noqa: E402

from kiosk.audio import hearing, live  # noqa: E402
from kiosk.audio.devices import probe  # noqa: E402
from kiosk.audio.hearing import HearingProfile, HearingProfiles  # noqa: E402
from kiosk.calls.audio import open_call_audio  # noqa: E402
from kiosk.calls.media import ToneAudioTrack  # noqa: E402
from kiosk.settings import KioskSettings, TabletPreferences  # noqa: E402
from screens.app import LiensApp  # noqa: E402
from tests.ui.call_driver import JULIE, THOMAS, FakeCallCore, portrait, settled  # noqa: E402
from tests.ui.driver import Steps, drive, screenshot, tap, wait_until  # noqa: E402
from tests.ui.fake_core import config  # noqa: E402
from tests.ui.lockdown_driver import STAFF_PIN, settle, staff_config, type_pin  # noqa: E402


class AudioCore(FakeCallCore):
    """``FakeCallCore`` with what the staff screen reads of ``KioskCore``, and a data folder."""

    def __init__(self, data_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = KioskSettings(data_dir=data_dir)
        self.preferences = TabletPreferences()
        self.app_version = "9.9.9-test"
        self.tablet_name = "Salon du 2e"

    def media_devices(self) -> dict[str, bool | None]:
        # As KioskCore on a machine without ALSA: unknown until the audio probe answers.
        return {"microphone": None, "speaker": None}

    def save_preferences(self, preferences: TabletPreferences) -> None:
        self.preferences = preferences


def rect(widget: Any) -> list[float]:
    x, y = widget.to_window(widget.x, widget.y)
    return [round(x), round(y), round(widget.width), round(widget.height)]


def row_texts(row: Any) -> list[str]:
    """What a row of the hearing panel says: name, boost, clearer voice, spoken announcements."""
    ids = row.ids
    return [row.name, ids.boost_label.text, ids.speech_toggle.text, ids.announce_toggle.text]


def fits(button: Any) -> list[float]:
    """A button's label's drawn text size against the button's size: [tw, th, bw, bh]."""
    label = next(w for w in button.walk(restrict=True) if isinstance(w, Label))
    return [*label.texture_size, button.width, button.height]


def overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def scenario_incall(out_dir: Path) -> tuple[AudioCore, Callable[..., Steps]]:
    data_dir = out_dir / "data"
    HearingProfiles(data_dir).set("r1", HearingProfile(boost_db=3.0))
    core = AudioCore(data_dir, config=config([("r1", "Jeanne", [JULIE, THOMAS])]))

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 2)
        core.call_event("incoming", "call-in-1")
        yield from settled(app, "call_incoming")
        yield from tap(app.incoming_screen.ids.answer_button)
        # What the engine does when the call's media open: the resident's real audio path.
        audio = open_call_audio("synthetic", ToneAudioTrack(), resident_id="r1")
        try:
            core.remote_video.put(portrait(640, 480))
            core.local_video.put(portrait(320, 240, tint=(120, 140, 160)))
            core.call_event("connecting", "call-in-1")
            core.call_event("connected", "call-in-1")
            yield from settled(app, "call_incall")
            screen = app.incall_screen
            ids = screen.ids
            yield from wait_until(lambda: screen.volume_level == 1)
            result["level_at_start"] = screen.volume_level
            result["levels"] = screen.volume_levels
            result["text_at_start"] = screen.volume_text
            result["labels"] = [ids.volume_up_label.text, ids.volume_down_label.text]
            result["button_texts"] = [ids.volume_up.text, ids.volume_down.text]
            result["button_sizes"] = [list(ids.volume_up.size), list(ids.volume_down.size)]
            result["eighteen_mm_px"] = mm(18)
            result["dpi"] = Metrics.dpi
            result["bars_lit_at_start"] = ids.volume_bars.lit()
            boxes = {
                "volume": rect(ids.volume_box),
                "hang_up": rect(ids.hang_up_button),
                "self_view": rect(ids.local_video),
            }
            result["boxes"] = boxes
            result["volume_overlaps"] = [
                name for name in ("hang_up", "self_view") if overlaps(boxes["volume"], boxes[name])
            ]
            result["gain_db_at_start"] = audio.chain.gain_db

            yield from tap(ids.volume_up)
            yield from tap(ids.volume_up)
            yield from wait_until(lambda: screen.volume_level == 3)
            result["level_after_two_ups"] = screen.volume_level
            result["text_after_two_ups"] = screen.volume_text
            result["gain_db_after_two_ups"] = audio.chain.gain_db
            result["saved_after_two_ups"] = hearing.profiles().get("r1").boost_db
            yield from tap(ids.volume_up)
            yield from wait_until(lambda: screen.volume_level == 4)
            result["text_at_top"] = screen.volume_text
            result["bars_lit_at_top"] = ids.volume_bars.lit()
            result["screenshot"] = screenshot(out_dir, "incall-volume.png")
            yield from tap(ids.volume_up)  # at the top already: nothing more
            yield 0.3
            result["level_after_tap_at_top"] = screen.volume_level
            yield from tap(ids.volume_down)
            yield from wait_until(lambda: screen.volume_level == 3)
            result["level_after_down"] = screen.volume_level
            result["saved_at_end"] = hearing.profiles().get("r1").boost_db
            result["chain_boost_at_end"] = audio.chain.profile.boost_db
            result["hang_ups"] = core.hang_ups
        finally:
            audio.stop()
        result["live_after_stop"] = live.level()
        core.call_event("ended", "call-in-1", reason="hung_up")
        yield from settled(app, "call_message")

    return core, steps


def scenario_staff(out_dir: Path) -> tuple[AudioCore, Callable[..., Steps]]:
    data_dir = out_dir / "data"
    data = staff_config()
    data["residents"].append(
        {"id": "r2", "first_name": "Marcel", "kind": "senior", "language": "fr", "contacts": []}
    )
    HearingProfiles(data_dir).set("r1", HearingProfile())
    HearingProfiles(data_dir).set(
        "r2", HearingProfile(boost_db=9.0, speech_boost=True, announce=True)
    )
    core = AudioCore(data_dir, config=data)

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        result["probe"] = probe().as_dict()
        flow = app.staff_flow
        # Two residents: the tablet asks who is using it.
        yield from wait_until(lambda: app.manager.current in ("home", "picker"), timeout=10)
        flow.open()
        yield from settle(app, "staff_pin")
        yield from type_pin(app, STAFF_PIN)
        yield from settle(app, "staff")
        staff = flow.staff_screen
        yield from wait_until(lambda: staff.echo_text != "", timeout=10)
        yield 0.2
        result["microphone"] = staff.ids.microphone_value.text
        result["speaker"] = staff.ids.speaker_value.text
        result["echo"] = staff.ids.echo_value.text
        result["devices_notice"] = staff.ids.devices_notice.text
        result["hearing_button"] = staff.ids.hearing_button.text
        result["screenshot_staff"] = screenshot(out_dir, "staff-audio.png")

        yield from tap(staff.ids.hearing_button)
        yield from wait_until(lambda: staff.showing_hearing)
        yield 0.3
        rows = staff.hearing_widgets()
        result["rows"] = [row_texts(r) for r in rows]
        jeanne = rows[0]
        result["row_button_heights_px"] = [
            jeanne.ids.minus.height,
            jeanne.ids.plus.height,
            jeanne.ids.speech_toggle.height,
            jeanne.ids.announce_toggle.height,
        ]
        result["row_boxes"] = {
            name: rect(jeanne.ids[name])
            for name in ("minus", "boost_label", "plus", "speech_toggle", "announce_toggle")
        }
        # Each toggle's words fit inside it, at 1280x800 (the narrowest screen).
        result["toggle_fits"] = {
            name: fits(jeanne.ids[name]) for name in ("speech_toggle", "announce_toggle")
        }
        result["eighteen_mm_px"] = mm(18)
        yield from tap(jeanne.ids.minus)  # already at "normal": stays there
        yield 0.2
        result["boost_after_minus_at_zero"] = staff.hearing_widgets()[0].boost_db
        yield from tap(jeanne.ids.plus)
        yield from wait_until(lambda: staff.hearing_widgets()[0].boost_db == 3)
        yield from tap(staff.hearing_widgets()[0].ids.speech_toggle)
        yield from wait_until(lambda: staff.hearing_widgets()[0].speech_boost)
        yield from tap(staff.hearing_widgets()[0].ids.announce_toggle)
        yield from wait_until(lambda: staff.hearing_widgets()[0].announce)
        yield from tap(staff.hearing_widgets()[1].ids.announce_toggle)  # Marcel's: on -> off
        yield from wait_until(lambda: not staff.hearing_widgets()[1].announce)
        yield 0.3
        rows = staff.hearing_widgets()
        result["rows_after"] = [row_texts(r) for r in rows]
        result["saved"] = {
            rid: profile.to_json() for rid, profile in HearingProfiles(data_dir).all().items()
        }
        result["screenshot_hearing"] = screenshot(out_dir, "staff-hearing.png")
        yield from tap(staff.ids.hearing_done)
        yield from wait_until(lambda: not staff.showing_hearing)
        result["panel_closed"] = True

    return core, steps


SCENARIOS = {"incall": scenario_incall, "staff": scenario_staff}


def main(argv: list[str]) -> int:
    return drive(argv, SCENARIOS, timeout=240)  # a deadline (see test_audio_ui.py), not a measure


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
