"""UI scenarios of "who is using the tablet", run like ``tests/ui/driver.py`` (one process each).

``python -m tests.ui.picker_driver SCENARIO OUT_DIR`` under Xvfb; the last line of stdout is
``RESULT:{json}``. Every tap waits for the screen's slide to finish first (the machine may be
busy with other tests).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher

# First: the base driver sets the window's size before anything creates the Kivy window.
import tests.ui.driver as ui
from screens.app import LiensApp
from tests.ui.fake_core import FakeCore, config, contact
from tests.ui.limits import GIVE_UP_SECONDS

LEA_PIN = "2580"
TIMEOUT = 20.0
IDLE_S = 2.0  # kiosk.idle_return_s in the idle scenario
PARIS = ZoneInfo("Europe/Paris")


def tomorrow_only() -> dict[str, Any]:
    """A policy that allows calls tomorrow afternoon only: the tile says "Demain à 14 h"."""
    tomorrow = (datetime.now(PARIS).weekday() + 1) % 7
    return {"windows": [{"days": [tomorrow], "start": "14:00", "end": "18:00"}]}


def shared_config(*, idle: float | None = None, night: bool = False) -> dict[str, Any]:
    later = contact("c2", "ap-2", "Jean-Pierre Martin", "Fils")
    later["policy"] = tomorrow_only()
    data = config(
        [
            ("s1", "Jeanne", [contact("c1", "ap-1", "Marie Dupont", "Fille"), later]),
            (
                "y1",
                "Léa",
                [
                    contact("c3", "ap-3", "Nadia", "Éducatrice"),
                    contact("c4", "ap-4", "Karim", "Frère"),
                ],
            ),
            ("y2", "Yanis", [contact("c5", "ap-5", "Sofia", "Mère")]),
        ]
    )
    pin_hash = PasswordHasher().hash(LEA_PIN)
    for resident in data["residents"]:
        if resident["id"].startswith("y"):
            resident["kind"] = "youth"
            resident["pin_hash"] = pin_hash if resident["id"] == "y1" else ""
    data["kiosk"] = {}
    if idle is not None:
        data["kiosk"]["idle_return_s"] = idle
    if night:
        now = datetime.now(PARIS)
        data["kiosk"]["night"] = {
            "start": (now - timedelta(hours=1)).strftime("%H:%M"),
            "end": (now + timedelta(hours=1)).strftime("%H:%M"),
        }
    return data


def only(data: dict[str, Any], resident_id: str) -> dict[str, Any]:
    data["residents"] = [r for r in data["residents"] if r["id"] == resident_id]
    return data


def settled(app: LiensApp, name: str) -> Callable[[], bool]:
    return lambda: app.manager.current == name and not app.manager.transition.is_active


def go(app: LiensApp, name: str) -> Iterator[float]:
    yield from ui.wait_until(settled(app, name), timeout=TIMEOUT)
    yield 0.3


def type_pin(app: LiensApp, pin: str) -> Iterator[float]:
    screen = app.who.pin_screen
    for digit in pin:
        yield from ui.wait_until(lambda: not screen.checking, timeout=TIMEOUT)
        yield from ui.tap(screen.ids[f"key_{digit}"])
    yield from ui.wait_until(lambda: not screen.checking, timeout=TIMEOUT)
    yield 0.1


def names(app: LiensApp) -> list[str]:
    return [t.name for t in app.home_screen.tiles()]


def pick(app: LiensApp, index: int) -> Iterator[float]:
    yield from go(app, "picker")
    yield from ui.tap(app.who.picker_screen.tiles()[index])


def scenario_pin(out_dir: Path) -> tuple[FakeCore, Callable[..., ui.Steps]]:
    """Picker -> Léa's PIN (wrong, right) -> her home only -> done -> lock-out -> staff reset."""
    core = FakeCore(config=shared_config())

    def steps(app: LiensApp, result: dict[str, Any]) -> ui.Steps:
        picker, pin, home = app.who.picker_screen, app.who.pin_screen, app.home_screen
        yield from go(app, "picker")
        result["picker_names"] = [t.name for t in picker.tiles()]
        result["picker_title"] = picker.title
        result["picker_sizes"] = [list(t.size) for t in picker.tiles()]
        result["home_tiles_behind_picker"] = names(app)
        result["screenshot_picker"] = ui.screenshot(out_dir, "picker.png")
        yield from pick(app, 1)
        yield from go(app, "pin")
        result["pin_title"] = pin.title
        result["key_sizes"] = [list(pin.ids[f"key_{k}"].size) for k in "0123456789"]
        yield from type_pin(app, "1111")
        result["wrong_status"] = pin.status
        result["screen_after_wrong"] = app.manager.current
        result["screenshot_wrong"] = ui.screenshot(out_dir, "picker-pin-wrong.png")
        yield from type_pin(app, LEA_PIN)
        yield from go(app, "home")
        result["lea_tiles"] = names(app)
        result["lea_look"] = home.look
        result["lea_request_buttons"] = len(home.request_buttons())
        yield 1.2  # the scroll view fades its new content in: let it settle for the picture
        result["screenshot_lea"] = ui.screenshot(out_dir, "home-states-youth.png")
        # "J'ai fini": back to the picker, nothing of Léa's left on the home.
        yield from ui.tap(home.ids.done_button)
        yield from go(app, "picker")
        result["tiles_after_done"] = names(app)
        # Five wrong codes: locked, calmly; even the right code waits; staff reset it.
        yield from pick(app, 1)
        yield from go(app, "pin")
        for wrong in ("0000", "1234", "9999", "4321"):
            yield from type_pin(app, wrong)
        result["last_try_status"] = pin.status
        yield from type_pin(app, "5555")
        result["locked_status"] = pin.status
        result["locked"] = pin.locked
        result["screenshot_locked"] = ui.screenshot(out_dir, "picker-pin-locked.png")
        yield from ui.tap(pin.ids.key_2)  # disabled while locked: nothing typed
        result["typed_while_locked"] = pin.pin
        # Back to the picker and again: still locked (another child is not).
        yield from ui.tap(pin.ids.key_back)
        yield from pick(app, 1)
        yield from go(app, "pin")
        result["still_locked"] = pin.locked
        core.emit_from_thread(
            {"event": "command", "command": "reset_pin_lock", "data": {"resident_id": "y1"}}
        )
        yield from ui.wait_until(lambda: not pin.locked, timeout=TIMEOUT)
        result["status_after_reset"] = pin.status
        yield from type_pin(app, LEA_PIN)
        yield from go(app, "home")
        result["home_after_reset"] = names(app)
        # Yanis has no code yet on this shared tablet: "ask an educator", no way in.
        yield from ui.tap(home.ids.done_button)
        yield from pick(app, 2)
        yield from go(app, "pin")
        result["no_pin_status"] = pin.status
        result["no_pin_locked"] = pin.locked

    return core, steps


def scenario_idle(out_dir: Path) -> tuple[FakeCore, Callable[..., ui.Steps]]:
    """Senior one tap -> tile states -> 2 s without a touch -> the picker."""
    core = FakeCore(config=shared_config(idle=IDLE_S))

    def steps(app: LiensApp, result: dict[str, Any]) -> ui.Steps:
        home = app.home_screen
        yield from go(app, "picker")
        # Before the tap: the session opens at the touch, and a busy machine may run the
        # driver's next step a second or more after it.
        touched = time.monotonic()
        yield from ui.tap(app.who.picker_screen.tiles()[0])
        # Not waiting for the slide to end: on a busy machine it may take longer than IDLE_S.
        yield from ui.wait_until(lambda: len(home.tiles()) == 2, timeout=TIMEOUT)
        result["jeanne_tiles"] = names(app)
        result["states"] = [(t.availability, t.when) for t in home.tiles()]
        result["look"] = home.look
        if not app.manager.transition.is_active and app.manager.current == "home":
            result["screenshot"] = ui.screenshot(out_dir, "home-states.png")
        yield from ui.wait_until(lambda: app.manager.current == "picker", timeout=TIMEOUT)
        result["idle_return_s"] = round(time.monotonic() - touched, 2)
        yield from ui.wait_until(lambda: names(app) == [], timeout=TIMEOUT)
        result["tiles_after_idle"] = names(app)
        # Offline: the calm line; tiles still there (a tap gives a calm sentence).
        core.emit_from_thread({"event": "config", "revision": 2, "config": shared_config()})
        yield from pick(app, 0)
        yield from go(app, "home")
        core.emit_from_thread({"event": "disconnected", "reason": "network"})
        yield from ui.wait_until(lambda: home.connection_text != "", timeout=TIMEOUT)
        yield 1.2
        result["offline_text"] = home.connection_text
        result["offline_states"] = [t.availability for t in home.tiles()]
        result["screenshot_offline"] = ui.screenshot(out_dir, "home-states-offline.png")

    return core, steps


def scenario_single(out_dir: Path) -> tuple[FakeCore, Callable[..., ui.Steps]]:
    """One senior: no picker. One youth: her PIN, no "back". Night: shade and sentence."""
    core = FakeCore(config=only(shared_config(), "s1"))

    def steps(app: LiensApp, result: dict[str, Any]) -> ui.Steps:
        home, pin = app.home_screen, app.who.pin_screen
        yield from go(app, "home")
        result["senior_screen"] = app.manager.current
        result["senior_tiles"] = names(app)
        lea = only(shared_config(), "y1")
        lea["revision"] = 2
        core.emit_from_thread({"event": "config", "revision": 2, "config": lea})
        yield from go(app, "pin")
        result["youth_screen"] = app.manager.current
        result["youth_can_go_back"] = pin.can_go_back
        result["screenshot_pin"] = ui.screenshot(out_dir, "picker-pin.png")
        yield from type_pin(app, LEA_PIN)
        yield from go(app, "home")
        result["youth_tiles"] = names(app)
        night = only(shared_config(night=True), "s1")
        night["revision"] = 3
        core.emit_from_thread({"event": "config", "revision": 3, "config": night})
        yield from go(app, "home")
        yield from ui.wait_until(lambda: home.night and home.look == "senior", timeout=TIMEOUT)
        yield 1.2
        result["night_text"] = home.night_text
        result["night_part"] = home.night_part
        result["night_brightness"] = home.brightness
        result["screenshot_night"] = ui.screenshot(out_dir, "home-states-night.png")

    return core, steps


SCENARIOS = {"pin": scenario_pin, "idle": scenario_idle, "single": scenario_single}


def main(argv: list[str]) -> int:
    return ui.drive(
        argv,
        SCENARIOS,
        timeout=GIVE_UP_SECONDS,  # a deadline, not a measure (tests/ui/limits.py)
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
