"""Runs one call scenario of the Liens app in this process and prints its result as JSON.

Launched by ``tests/ui/test_call_screens.py`` as ``python -m tests.ui.call_driver SCENARIO
OUT_DIR`` under Xvfb, like ``tests.ui.driver`` (whose runner and helpers it reuses). The core
is ``FakeCallCore``: the shared ``FakeCore`` plus the call engine's API (``start_call``,
``answer_call``, ``decline_call``, ``hang_up``, ``call``, ``remote_video``, ``local_video``)
and call events sent from background threads, as the engine sends them. Video frames are fed
into one-slot holders by a thread at 30 frames per second, as the engine's decoder would.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.config import Config  # noqa: E402

# As tests.ui.driver: the window's size is decided before Kivy creates it.
Config.set("graphics", "width", "1280")
Config.set("graphics", "height", "800")
Config.set("graphics", "resizable", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")

from kivy.clock import Clock  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.metrics import Metrics, cm  # noqa: E402

from screens.app import LiensApp  # noqa: E402
from screens.call import colours  # noqa: E402
from screens.call.common import TAP_GUARD_SECONDS  # noqa: E402
from screens.components.palette import contrast_ratio  # noqa: E402
from tests.ui.driver import (  # noqa: E402
    DOCS_SCREENS,
    Runner,
    Steps,
    screenshot,
    tap,
    wait_until,
    write_portrait_png,
)
from tests.ui.fake_core import FakeCore, config, contact  # noqa: E402
from tests.ui.limits import GIVE_UP_SECONDS  # noqa: E402

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)


class FakeCallRefused(Exception):
    """Same shape as ``kiosk.calls.CallRefused``: ``reason`` and ``next_allowed``."""

    def __init__(self, reason: str, next_allowed: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.next_allowed = next_allowed


class FakeLatestFrame:
    """A thread-safe one-slot holder, like ``kiosk.calls``' ``LatestFrame``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slot: tuple[int, np.ndarray] | None = None
        self._sequence = 0

    def put(self, frame: np.ndarray) -> None:
        with self._lock:
            self._sequence += 1
            self._slot = (self._sequence, frame)

    def get(self) -> tuple[int, np.ndarray] | None:
        with self._lock:
            return self._slot


class FrameFeeder:
    """Puts ``frame`` into ``holder`` 30 times a second from its own thread (a decoder)."""

    def __init__(self, holder: FakeLatestFrame, frame: np.ndarray) -> None:
        self.holder = holder
        self.frame = frame
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-decoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1 / 30):
            self.holder.put(self.frame)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1)


class FakeCallCore(FakeCore):
    """``FakeCore`` with the call engine's API; remembers every call the app made."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_calls: list[str] = []
        self.refusals: list[FakeCallRefused] = []  # raised by start_call, one per call
        self.answers = 0
        self.declines = 0
        self.hang_ups = 0
        self.remote_video = FakeLatestFrame()
        self.local_video = FakeLatestFrame()
        self.call: Any = None

    def start_call(self, approval_id: str) -> str:
        self.start_calls.append(approval_id)
        if self.refusals:
            raise self.refusals.pop(0)
        return f"call-out-{len(self.start_calls)}"

    def answer_call(self) -> None:
        self.answers += 1

    def decline_call(self) -> None:
        self.declines += 1

    def hang_up(self) -> None:
        self.hang_ups += 1

    def call_event(self, state: str, call_id: str, **fields: Any) -> None:
        """A ``call`` event from a background thread, with the engine's fields."""
        event = {
            "event": "call",
            "state": state,
            "call_id": call_id,
            "approval_id": "ap-1",
            "direction": "incoming",
            "contact_name": "Julie",
            "reason": None,
            "auto_answer_s": None,
        }
        event.update(fields)
        self.emit_from_thread(event)


def pattern(width: int, height: int) -> np.ndarray:
    """Left half red with a green band along the top, right half blue (H, W, 3) RGB."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:, : width // 2] = RED
    frame[: height // 4, : width // 2] = GREEN
    frame[:, width // 2 :] = BLUE
    return frame


def portrait(
    width: int, height: int, *, tint: tuple[int, int, int] = (200, 170, 120)
) -> np.ndarray:
    """A synthetic camera picture: a face-like disc and shoulders on a warm background."""
    y, x = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = tint
    frame[..., 0] = np.clip(tint[0] - y * 60 // height, 0, 255)
    face = (x - width / 2) ** 2 + (y - height * 0.42) ** 2 < (height * 0.22) ** 2
    frame[face] = (233, 196, 160)
    shoulders = (y > height * 0.7) & (abs(x - width / 2) < width * 0.3)
    frame[shoulders] = (52, 96, 140)
    return frame


def texture_rgb(texture: Any, x: int, row_from_top: int) -> list[int]:
    """A texel of ``texture`` as uploaded (``row_from_top`` counts the frame's rows)."""
    width = texture.size[0]
    pixels = texture.pixels
    offset = (row_from_top * width + x) * 4
    return list(pixels[offset : offset + 3])


def screen_rgb(png: str, points: dict[str, tuple[int, int]]) -> dict[str, list[int]]:
    """Colours of a screenshot at window points (x, y from the bottom left, as Kivy counts)."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        height = rgb.height
        return {
            name: list(rgb.getpixel((x, height - 1 - y)))  # type: ignore[arg-type]
            for name, (x, y) in points.items()
        }


class FrameGaps:
    """The longest time between two frames of the app since :meth:`start` (seconds).

    A countdown that changes each second is seen to show every second only when the app's main
    loop ran often enough (``tests.ui.limits.SMOOTH_FRAME_GAP_S``): on a starved machine it
    rightly jumps a number (it counts from a deadline, not from its ticks).
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self._last: float | None = None
        self._event: Any = None

    def start(self) -> None:
        self._event = Clock.schedule_interval(self._frame, 0)

    def stop(self) -> float:
        if self._event is not None:
            self._event.cancel()
        return round(self.longest, 3)

    def _frame(self, _dt: float) -> None:
        now = time.monotonic()
        if self._last is not None:
            self.longest = max(self.longest, now - self._last)
        self._last = now


def screen_switches(app: LiensApp) -> dict[str, float]:
    """Screen name -> when the app first switched to it from now on (``time.monotonic()``)."""
    switches: dict[str, float] = {}

    def on_current(_manager: Any, name: str) -> None:
        switches.setdefault(name, time.monotonic())

    app.manager.bind(current=on_current)
    return switches


def settled(app: LiensApp, screen: str, timeout: float = 20.0) -> Steps:
    """Wait until ``screen`` is shown, its transition done, and its tap guard over."""
    yield from wait_until(lambda: app.manager.current == screen, timeout=timeout)
    yield from wait_until(lambda: not app.manager.transition.is_active, timeout=timeout)
    yield TAP_GUARD_SECONDS + 0.05


def blit_cost(view: Any, frame: np.ndarray, count: int = 30) -> float:
    """Mean milliseconds ``VideoView.update`` takes for one new frame of this size."""
    holder = FakeLatestFrame()
    saved = view.source
    view.source = holder
    started = time.perf_counter()
    for _ in range(count):
        holder.put(frame)
        view.update()
    elapsed = time.perf_counter() - started
    view.source = saved
    return round(elapsed / count * 1000, 3)


JULIE = contact("c1", "ap-1", "Julie", "Petite-fille")
THOMAS = contact("c2", "ap-2", "Thomas Bernard", "Petit-fils")


# --- scenarios ---------------------------------------------------------------------------------


def scenario_incoming(out_dir: Path) -> tuple[FakeCallCore, Callable[..., Steps]]:
    """Julie calls; "Answer" with a real touch; her video fills the screen; "Hang up"."""
    photo = out_dir / "photo-c1.png"
    write_portrait_png(photo)
    core = FakeCallCore(
        config=config([("r1", "Jeanne", [JULIE, THOMAS])]), photo_paths={"c1": str(photo)}
    )

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 2)
        core.call_event("incoming", "call-in-1")
        yield from settled(app, "call_incoming")
        screen = app.incoming_screen
        result["incoming_title"] = screen.title_text
        result["incoming_photo"] = bool(screen.photo)
        result["countdown_text_without_auto_answer"] = screen.countdown_text
        buttons = {"answer": screen.ids.answer_button, "decline": screen.ids.decline_button}
        result["incoming_button_sizes"] = {k: list(b.size) for k, b in buttons.items()}
        yield from tap(screen.ids.answer_button)
        yield from tap(screen.ids.answer_button)  # a tremor's second touch: one answer
        result["answers"] = core.answers

        core.remote_video.put(pattern(640, 480))
        core.local_video.put(portrait(320, 240, tint=(120, 140, 160)))
        remote_feed = FrameFeeder(core.remote_video, pattern(640, 480))
        local_feed = FrameFeeder(core.local_video, portrait(320, 240, tint=(120, 140, 160)))
        try:
            core.call_event("connecting", "call-in-1")
            core.call_event("connected", "call-in-1")
            yield from settled(app, "call_incall")
            incall = app.incall_screen
            remote = incall.ids.remote_video
            yield from wait_until(lambda: remote.has_frame)
            yield 0.3
            texture = remote.texture
            result["texture_size"] = list(texture.size)
            result["texture_texels"] = {
                "top_left": texture_rgb(texture, 10, 5),
                "bottom_left": texture_rgb(texture, 10, 470),
                "bottom_right": texture_rgb(texture, 630, 470),
            }
            # 640x480 in 1280x800, letterboxed: x from 107 to 1173, the full height.
            result["picture_rect"] = [round(v) for v in remote.picture_rect()]
            shot = screenshot(out_dir, "incall-pattern.png")
            result["screen_pixels"] = screen_rgb(
                shot,
                {"left": (300, 400), "top_left": (300, 760), "right": (900, 400)},
            )

            remote_feed.frame = pattern(320, 240)
            yield from wait_until(lambda: list(remote.frame_size) == [320, 240])
            yield 0.2
            texture = remote.texture
            result["small_texture_size"] = list(texture.size)
            result["small_texture_texels"] = {
                "top_left": texture_rgb(texture, 5, 2),
                "bottom_left": texture_rgb(texture, 5, 235),
                "bottom_right": texture_rgb(texture, 315, 235),
            }
            result["texture_creations"] = remote.texture_creations
            result["blits"] = remote.blits
            result["blit_ms_mean_in_call"] = round(
                remote.blit_seconds / max(1, remote.blits) * 1000, 3
            )
            result["blit_ms"] = {
                "640x480": blit_cost(remote, pattern(640, 480)),
                "1280x720": blit_cost(remote, portrait(1280, 720)),
                "320x240": blit_cost(remote, pattern(320, 240)),
            }
            remote_feed.frame = portrait(640, 480)
            yield 0.4
            result["local_has_frame"] = incall.ids.local_video.has_frame
            result["screenshot_incall"] = screenshot(out_dir, "call-incall.png")

            button = incall.ids.hang_up_button
            result["hang_up_size"] = list(button.size)
            result["three_cm_px"] = cm(3)
            result["dpi"] = Metrics.dpi
            yield from tap(button)
            result["hang_ups"] = core.hang_ups
        finally:
            remote_feed.stop()
            local_feed.stop()
        # The sentence stays ~3 s from the end of the call: time it from the event, not from the
        # end of the slide (the slide alone took ~2 s on a loaded machine).
        # The home's return is timed by the screen manager's own event: this scenario's steps
        # can run seconds late on a loaded machine, the app's switch cannot be seen late.
        switches = screen_switches(app)
        ended_at = time.monotonic()
        core.call_event("ended", "call-in-1", reason="hung_up")
        yield from settled(app, "call_message")
        result["ended_sentence"] = app.message_screen.sentence
        result["remote_texture_after_end"] = remote.texture is not None
        yield from wait_until(lambda: "home" in switches, timeout=30)
        result["home_after_s"] = round(switches["home"] - ended_at, 2)

    return core, steps


def scenario_countdown(out_dir: Path) -> tuple[FakeCallCore, Callable[..., Steps]]:
    """An automatic answer counts down 3, 2, 1; then a call cut by the network; then a decline."""
    photo = out_dir / "photo-c1.png"
    write_portrait_png(photo)
    core = FakeCallCore(config=config([("r1", "Jeanne", [JULIE])]), photo_paths={"c1": str(photo)})

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 1)
        screen = app.incoming_screen
        # Every text the countdown shows, from the screen's own property event: polling it
        # from this scenario's steps misses seconds when a loaded machine runs them late.
        seen: list[str] = []

        def on_countdown_text(_screen: Any, text: str) -> None:
            if not seen or seen[-1] != text:
                seen.append(text)

        screen.bind(countdown_text=on_countdown_text)
        gaps = FrameGaps()
        gaps.start()
        core.call_event("incoming", "call-in-2", auto_answer_s=3)
        yield from wait_until(lambda: app.manager.current == "call_incoming", timeout=20)
        started = time.monotonic()
        yield from wait_until(
            lambda: not app.manager.transition.is_active and time.monotonic() - started > 1.2,
            timeout=20,
        )
        result["screenshot_incoming"] = screenshot(out_dir, "call-incoming.png")
        yield from wait_until(lambda: int(screen.countdown) == 0, timeout=30)
        screen.unbind(countdown_text=on_countdown_text)
        result["countdown_texts"] = seen
        result["countdown_longest_frame_gap_s"] = gaps.stop()
        # The engine answers by itself at 0.
        core.call_event("connecting", "call-in-2")
        core.call_event("connected", "call-in-2")
        yield from settled(app, "call_incall")
        result["waiting_text"] = app.incall_screen.waiting_text
        result["waiting_visible"] = app.incall_screen.ids.waiting_label.opacity == 1
        core.call_event("ended", "call-in-2", reason="network")
        yield from settled(app, "call_message")
        result["network_sentence"] = app.message_screen.sentence
        yield from wait_until(lambda: app.manager.current == "home", timeout=30)

        core.call_event("incoming", "call-in-3")
        yield from settled(app, "call_incoming")
        result["countdown_text_second_call"] = screen.countdown_text
        yield from tap(screen.ids.decline_button)
        result["declines"] = core.declines
        result["answers"] = core.answers
        core.call_event("ended", "call-in-3", reason="declined")
        yield from settled(app, "call_message")
        result["declined_sentence"] = app.message_screen.sentence
        core.call_event("incoming", "call-in-4")
        yield from wait_until(lambda: app.manager.current == "call_incoming")
        core.call_event("ended", "call-in-4", reason="cancelled")
        yield from wait_until(lambda: app.manager.current == "call_message")
        result["cancelled_by_caller_sentence"] = app.message_screen.sentence
        result["contrast"] = {
            name: contrast_ratio(text, background)
            for name, (text, background) in colours.TEXT_PAIRS.items()
        }

    return core, steps


def scenario_outgoing(out_dir: Path) -> tuple[FakeCallCore, Callable[..., Steps]]:
    """A tile tap starts a call; it rings; "Cancel"; a refused call; a declined call."""
    core = FakeCallCore(config=config([("r1", "Jeanne", [JULIE, THOMAS])]))

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 2)
        yield 0.3
        julie = app.home_screen.tiles()[0]
        yield from tap(julie)
        result["start_calls"] = list(core.start_calls)
        result["records"] = list(core.records)
        yield from settled(app, "call_outgoing")
        screen = app.outgoing_screen
        result["outgoing_name"] = screen.contact_name
        result["status_dialling"] = screen.status_text
        core.call_event("dialling", "call-out-1", direction="outgoing")
        core.call_event("ringing", "call-out-1", direction="outgoing")
        yield from wait_until(lambda: screen.state == "ringing")
        yield 0.2
        result["status_ringing"] = screen.status_text
        result["screenshot_outgoing"] = screenshot(out_dir, "call-outgoing.png")
        result["cancel_size"] = list(screen.ids.cancel_button.size)
        yield from tap(screen.ids.cancel_button)
        result["hang_ups"] = core.hang_ups
        core.call_event("ended", "call-out-1", direction="outgoing", reason="cancelled")
        yield from settled(app, "call_message")
        result["cancelled_sentence"] = app.message_screen.sentence
        result["cancelled_shows_back"] = app.message_screen.show_back
        yield from wait_until(lambda: app.manager.current == "home", timeout=6)

        # Refused by the tablet's policy: a calm sentence with the next slot, and "Back".
        paris = ZoneInfo("Europe/Paris")
        tomorrow = (datetime.now(paris) + timedelta(days=1)).replace(
            hour=14, minute=0, second=0, microsecond=0
        )
        core.refusals.append(
            FakeCallRefused("policy", next_allowed=tomorrow.astimezone(ZoneInfo("UTC")))
        )
        yield 2.0  # the home screen's one-request-per-tile window (tremor)
        yield from tap(app.home_screen.tiles()[0])
        yield from settled(app, "call_message")
        result["refused_sentence"] = app.message_screen.sentence
        result["refused_shows_back"] = app.message_screen.show_back
        result["screenshot_refused"] = screenshot(out_dir, "call-refused.png")
        result["back_size"] = list(app.message_screen.ids.back_button.size)
        yield from tap(app.message_screen.ids.back_button)
        yield from wait_until(lambda: app.manager.current == "home")
        result["home_after_back"] = True

        yield 2.0
        yield from tap(app.home_screen.tiles()[0])
        yield from settled(app, "call_outgoing")
        core.call_event("ringing", "call-out-3", direction="outgoing")
        core.call_event("ended", "call-out-3", direction="outgoing", reason="declined")
        yield from wait_until(lambda: app.manager.current == "call_message")
        result["declined_sentence"] = app.message_screen.sentence
        result["start_calls_at_end"] = list(core.start_calls)

    return core, steps


SCENARIOS = {
    "incoming": scenario_incoming,
    "countdown": scenario_countdown,
    "outgoing": scenario_outgoing,
}
DOCS_NAMES = ("call-outgoing.png", "call-incoming.png", "call-incall.png", "call-refused.png")


def main(argv: list[str]) -> int:
    scenario, out_dir = argv[0], Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    core, steps = SCENARIOS[scenario](out_dir)
    app = LiensApp(core, fullscreen=False)
    result: dict[str, Any] = {"scenario": scenario}
    runner = Runner(app, steps(app, result), result)
    Clock.schedule_once(runner.step, 0.3)

    def give_up(_dt: float) -> None:
        result["ok"] = False
        result["error"] = "scenario timed out"
        app.stop()

    Clock.schedule_once(give_up, GIVE_UP_SECONDS)
    app.run()
    result["window"] = [Window.width, Window.height]
    if os.environ.get("LIENS_UPDATE_DOCS_SCREENS") == "1":
        DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
        for name in DOCS_NAMES:
            if (out_dir / name).exists():
                shutil.copy(out_dir / name, DOCS_SCREENS / name)
    sys.stdout.write("RESULT:" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
