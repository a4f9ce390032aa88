"""The real tablet app over a real ``KioskCore`` with synthetic media, in real video calls.

Launched by ``tests/ui/test_live_call.py`` as ``python -m tests.ui.live_call_driver DATA_DIR
OUT_DIR`` under Xvfb, on a kiosk data dir already enrolled with a running backend: what
``liens kiosk --windowed --media synthetic`` runs, plus a scenario on the Kivy clock. The
relatives (``tests.ui.relative``) live in the test's process; this process only runs the app,
taps with real touches and reports what the screen shows, one ``NAME:{json}`` line at a time:

1. ``READY`` once the home shows its tiles; Julie calls (manual answer).
2. ``ANSWERED`` once the incoming screen showed and "Décrocher" was tapped.
3. ``INCALL`` once the in-call ``VideoView`` texture shows Julie's red/blue picture.
4. ``HUNG_UP`` right after "Raccrocher" was tapped; then ``HOME`` when the home is back.
5. Thomas calls (his policy answers by itself after 3 s): ``CONNECTED`` once the countdown ran
   and his picture is on the texture, without any tap; he hangs up: ``HOME``.
6. ``RESULT:{json}`` after ``STOP`` and the app's end (always the last line, also on failure).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Generator
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")

from screens import configure_window  # noqa: E402

configure_window(fullscreen=False)  # 1280x800 in a window, as `liens kiosk --windowed`

from kivy.clock import Clock  # noqa: E402
from kivy.config import Config  # noqa: E402

Config.set("input", "mouse", "mouse,disable_multitouch")

from kivy.tests.common import UnitTestTouch  # noqa: E402

from kiosk.core import KioskCore  # noqa: E402
from kiosk.settings import KioskSettings  # noqa: E402
from screens.app import LiensApp  # noqa: E402
from screens.call.common import TAP_GUARD_SECONDS  # noqa: E402
from tests.ui.call_driver import FrameGaps, settled, texture_rgb  # noqa: E402
from tests.ui.driver import DOCS_SCREENS, Runner, Steps, screenshot, wait_until  # noqa: E402
from tests.ui.live_driver import read_commands, say, wait_for_command  # noqa: E402
from tests.ui.relative import looks_red_blue  # noqa: E402

GIVE_UP_SECONDS = 150  # a safety net: the test's own deadlines come first
# Answer -> the relative's picture on the texture: a deadline, not a measure (the test prints
# the time it took); a loaded 2-core machine needs room.
PICTURE_TIMEOUT = 20.0
DOCS_NAME = "call-incall-live.png"


def remote_texels(view: Any) -> dict[str, list[int]] | None:
    """The remote texture at the middle of its left and right quarters (the frame's rows)."""
    texture = view.texture
    if texture is None:
        return None
    width, height = texture.size
    return {
        "left": texture_rgb(texture, width // 4, height // 2),
        "right": texture_rgb(texture, width * 3 // 4, height // 2),
    }


def video_state(view: Any) -> dict[str, Any]:
    """What a ``VideoView`` is doing, for a failure message: is it polling its holder at all?"""
    source = view.source
    event = view._event  # its Clock interval: the only thing that blits while the call is on
    return {
        "last_texels": remote_texels(view),
        "active": view.active,
        "blits": view.blits,
        "holder_has_frame": source is not None and source.get() is not None,
        "interval_running": bool(event is not None and event.is_triggered),
    }


def wait_for_picture(view: Any, since: float) -> Generator[float, None, dict[str, Any]]:
    """Steps until ``view`` shows the relative's red/blue picture; what it showed, and when."""
    while True:
        texels = remote_texels(view)
        if texels is not None and looks_red_blue(texels["left"], texels["right"]):
            return {
                "texels": texels,
                "texture_size": list(view.texture.size),
                "picture_after_s": round(time.monotonic() - since, 3),
            }
        if time.monotonic() - since > PICTURE_TIMEOUT:
            raise TimeoutError(
                f"no red/blue picture on the texture in {PICTURE_TIMEOUT} s; {video_state(view)}"
            )
        yield 0.03


def first_frame_clock(view: Any) -> dict[str, float]:
    """Remembers when ``view`` first blitted a frame (``has_frame`` turned true)."""
    seen: dict[str, float] = {}

    def on_has_frame(_view: Any, has_frame: bool) -> None:
        if has_frame and "at" not in seen:
            seen["at"] = time.monotonic()

    view.bind(has_frame=on_has_frame)
    return seen


def tap_released(widget: Any, moments: dict[str, float]) -> Steps:
    """A real finger tap at ``widget``'s centre; ``moments["released"]`` is the touch's end."""
    x, y = widget.to_window(*widget.center)
    touch = UnitTestTouch(x, y)
    touch.touch_down()
    yield 0.08
    touch.touch_up()  # buttons act on release
    moments["released"] = time.monotonic()
    yield 0.05


def home_again(app: LiensApp, result: dict[str, Any], key: str) -> Steps:
    """Steps until the home is back after a call; reports ``HOME`` with the closing sentence.

    The switches are recorded by the screen manager's own event: a step that runs late on a
    loaded machine must not miss the closing message."""
    seen: dict[str, Any] = {}

    def on_current(_manager: Any, name: str) -> None:
        if name == "call_message" and "message_at" not in seen:
            seen["message_at"] = time.monotonic()
            seen["sentence"] = app.message_screen.sentence
        elif name == "home" and "message_at" in seen and "home_at" not in seen:
            seen["home_at"] = time.monotonic()

    if app.manager.current == "call_message":
        on_current(app.manager, "call_message")
    app.manager.bind(current=on_current)
    try:
        yield from wait_until(lambda: "home_at" in seen, timeout=30)
    finally:
        app.manager.unbind(current=on_current)
    result[key] = {
        "sentence": seen["sentence"],
        "message_shown_s": round(seen["home_at"] - seen["message_at"], 2),
    }
    say("HOME", result[key])


def call_steps(
    app: LiensApp,
    core: KioskCore,
    out_dir: Path,
    commands: queue.Queue[str],
    result: dict[str, Any],
) -> Steps:
    yield from wait_until(lambda: len(app.home_screen.tiles()) >= 2, timeout=40)
    result["tiles"] = [t.name for t in app.home_screen.tiles()]
    say("READY", {"tiles": result["tiles"]})

    # 1. Julie calls; the resident answers with a finger.
    yield from settled(app, "call_incoming")
    screen = app.incoming_screen
    incall = app.incall_screen
    remote = incall.ids.remote_video
    first = first_frame_clock(remote)
    answered: dict[str, Any] = {
        "title": screen.title_text,
        "countdown_text": screen.countdown_text,
        "button": screen.ids.answer_button.text,
    }
    moments: dict[str, float] = {}
    yield from tap_released(screen.ids.answer_button, moments)
    say("ANSWERED", answered)
    result["answered"] = answered

    yield from wait_until(lambda: app.manager.current == "call_incall", timeout=20)
    picture = yield from wait_for_picture(remote, moments["released"])
    picture["first_frame_after_s"] = round(first["at"] - moments["released"], 3)
    picture["engine_first_frame_after_answer_s"] = core.call_stats().first_frame_after_answer_s
    yield from wait_until(lambda: not app.manager.transition.is_active)
    yield 0.3  # the self-view's first frames too, for the screenshot
    picture["local_has_frame"] = incall.ids.local_video.has_frame
    picture["screenshot"] = screenshot(out_dir, DOCS_NAME)
    result["incall"] = picture
    say("INCALL", picture)

    # The screen ignores taps for its first TAP_GUARD_SECONDS (a tremor's second touch): a
    # picture that arrives quickly can leave the finger inside that guard, and the tap is lost.
    guard_left_s = max(0.0, TAP_GUARD_SECONDS - (time.monotonic() - incall._shown_at))
    yield from wait_until(incall.accepts_taps, timeout=5)
    hang_up: dict[str, float] = {}
    yield from tap_released(incall.ids.hang_up_button, hang_up)
    # time.monotonic() is the system's monotonic clock: the test compares it with its own.
    say(
        "HUNG_UP",
        {
            "button": incall.ids.hang_up_button.text,
            "released_at": hang_up["released"],
            "guard_left_s": round(guard_left_s, 3),
        },
    )
    yield from home_again(app, result, "home_after_hang_up")

    # 2. Thomas calls; his policy answers by itself: no touch at all. What the screen shows
    # is recorded by the widgets' own property events, with their times: on a loaded machine
    # this scenario's steps can run late, and must not miss a value or mistime the answer.
    countdown: list[dict[str, Any]] = []
    switches: list[tuple[str, float]] = []

    def on_countdown_text(_screen: Any, text: str) -> None:
        value = int(screen.countdown)
        if value >= 0 and (not countdown or countdown[-1]["value"] != value):
            countdown.append({"value": value, "text": text, "at": time.monotonic()})

    def on_current(_manager: Any, name: str) -> None:
        switches.append((name, time.monotonic()))

    screen.bind(countdown_text=on_countdown_text)
    app.manager.bind(current=on_current)
    gaps = FrameGaps()
    gaps.start()
    yield from wait_until(lambda: app.manager.current == "call_incoming", timeout=30)
    yield from wait_until(lambda: app.manager.current != "call_incoming", timeout=30)
    screen.unbind(countdown_text=on_countdown_text)
    app.manager.unbind(current=on_current)
    longest_gap = gaps.stop()
    shown_at = next(at for name, at in switches if name == "call_incoming")
    left_at = next(at for name, at in switches if at > shown_at)
    connected: dict[str, Any] = {
        "title": screen.title_text,
        "countdown": [
            {"value": c["value"], "text": c["text"], "at_s": round(c["at"] - shown_at, 2)}
            for c in countdown
        ],
        "incall_after_s": round(left_at - shown_at, 2),
        "longest_frame_gap_s": longest_gap,
        "screen": app.manager.current,
        "answered_by_tap": bool(app.call and app.call.answered),
    }
    answer_at = time.monotonic()
    first = first_frame_clock(remote)
    picture = yield from wait_for_picture(remote, answer_at)
    connected.update(picture)
    connected["first_frame_after_s"] = round(first["at"] - answer_at, 3) if first else None
    connected["engine_first_frame_after_answer_s"] = core.call_stats().first_frame_after_answer_s
    result["auto_answer"] = connected
    say("CONNECTED", connected)
    yield from home_again(app, result, "home_after_auto_answer")

    yield from wait_for_command(commands, "STOP", timeout=30)


def main(argv: list[str]) -> int:
    data_dir, out_dir = Path(argv[0]), Path(argv[1])
    # As `liens kiosk`: the core's log on stderr (the test shows its tail when a step fails).
    logging.basicConfig(
        level=os.environ.get("LIENS_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"scenario": "live_call"}
    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    # As `liens kiosk --windowed --media synthetic`: the test pattern and tone, no devices.
    core = KioskCore(KioskSettings(data_dir=data_dir), media="synthetic")
    app = LiensApp(core, fullscreen=False)
    runner = Runner(app, call_steps(app, core, out_dir, commands, result), result)
    Clock.schedule_once(runner.step, 0.3)

    def give_up(_dt: float) -> None:
        result["ok"] = False
        result.setdefault("error", "scenario timed out")
        app.stop()

    Clock.schedule_once(give_up, GIVE_UP_SECONDS)
    try:
        app.run()
    except Exception:
        result["ok"] = False
        result["error"] = traceback.format_exc()
    finally:
        core.close()
    shot = out_dir / DOCS_NAME
    if os.environ.get("LIENS_UPDATE_DOCS_SCREENS") == "1" and shot.exists():
        DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, DOCS_SCREENS / DOCS_NAME)
    say("RESULT", result)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
