"""Lockdown scenarios of the Liens app, run in their own process under Xvfb.

``python -m tests.ui.lockdown_driver SCENARIO OUT_DIR``; the last line of stdout is
``RESULT:{json}`` (see ``tests/ui/driver.py`` for the runner). Touches are real
``UnitTestTouch`` events through the window, so the corner gesture sees what a finger does.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.config import Config  # noqa: E402

Config.set("graphics", "width", "1280")
Config.set("graphics", "height", "800")
Config.set("graphics", "resizable", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")

from argon2 import PasswordHasher  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.tests.common import UnitTestTouch  # noqa: E402

from kiosk.settings import TabletPreferences  # noqa: E402
from screens.app import LiensApp  # noqa: E402
from tests.ui.driver import SIX_CONTACTS, Runner, Steps, screenshot, tap, wait_until  # noqa: E402
from tests.ui.fake_core import FakeCore, config  # noqa: E402
from tests.ui.limits import GIVE_UP_SECONDS  # noqa: E402

STAFF_PIN = "2468"
# Cheap argon2 parameters: the tablet verifies whatever parameters the hash carries.
_hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


class LockdownCore(FakeCore):
    """A fake core with the staff-screen helpers of ``KioskCore``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preferences = TabletPreferences()
        self.saved: list[TabletPreferences] = []
        self.forgotten = 0
        self.app_version = "9.9.9-test"
        self.tablet_name = "Salon du 2e"

    def media_devices(self) -> dict[str, bool | None]:
        return {"microphone": True, "speaker": False}

    def save_preferences(self, preferences: TabletPreferences) -> None:
        self.preferences = preferences
        self.saved.append(preferences)

    def forget_enrolment(self) -> None:
        self.forgotten += 1
        self._needs_enrolment = True
        self._config = None


def staff_config() -> dict[str, Any]:
    data = config([("r1", "Jeanne", SIX_CONTACTS[:3])])
    data["staff_pins"] = [
        {"staff_id": "s-other", "name": "Paul", "pin_hash": _hasher.hash("13579")},
        {"staff_id": "s-1", "name": "Claire", "pin_hash": _hasher.hash(STAFF_PIN)},
    ]
    return data


def hold_corner(seconds: float, *, x: float = 12, from_top: float = 12) -> Iterator[float]:
    """A finger held still near the top-left corner for ``seconds``."""
    touch = UnitTestTouch(x, Window.height - from_top)
    touch.touch_down()
    waited = 0.0
    while waited < seconds:
        yield 0.1
        waited += 0.1
    touch.touch_up()
    yield 0.1


def type_pin(app: LiensApp, digits: str) -> Iterator[float]:
    """Tap ``digits`` then OK on the staff keypad, and wait for the check.

    Each digit is checked on the screen before the next: on a 2-core machine running two Kivy
    apps and a call, a synthetic touch can land while the keypad is still being laid out and
    be lost; a second tap of that key is what a person would do, and the scenario then tests the
    PIN, not the machine's load.
    """
    screen = app.staff_flow.pin_screen
    for digit in digits:
        expected = screen.pin + digit
        for _attempt in range(3):
            yield from tap(screen.ids[f"key_{digit}"])
            try:
                yield from wait_until(lambda: screen.pin == expected, timeout=3)
                break
            except TimeoutError:
                continue
        else:
            raise TimeoutError(f"key {digit} never registered (PIN so far {len(screen.pin)})")
    yield from tap(screen.ids.key_ok)
    yield from wait_until(lambda: screen.checking or screen.pin == "", timeout=10)
    yield from wait_until(lambda: not screen.checking, timeout=30)
    yield 0.1


def settle(app: LiensApp, name: str) -> Iterator[float]:
    """Wait until screen ``name`` is current and its transition is over (slow under load)."""
    manager = app.manager
    try:
        yield from wait_until(
            lambda: manager.current == name and not manager.transition.is_active,
            timeout=30,
        )
    except TimeoutError:
        pin = app.staff_flow.pin_screen
        raise TimeoutError(
            f"screen {name!r} not settled: current {manager.current!r}, transition active "
            f"{manager.transition.is_active}, staff PIN message {pin.message!r}"
        ) from None
    yield 0.2


def scenario_keys(out_dir: Path) -> tuple[LockdownCore, Callable[..., Steps]]:
    """Escape, Android's back, F1, Alt-F4 and a close request do nothing; a short corner press,
    or a tap there, opens nothing."""
    core = LockdownCore(config=staff_config())

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from settle(app, "home")
        swallowed = {}
        for name, key, modifiers in [
            ("escape", 27, []),
            ("f1", 282, []),
            ("menu", 319, []),
            ("alt_f4", 285, ["alt"]),
        ]:
            swallowed[name] = bool(Window.dispatch("on_keyboard", key, 0, "", modifiers))
            yield 0.1
        result["swallowed"] = swallowed
        result["close_refused"] = bool(Window.dispatch("on_request_close"))
        yield 0.2
        result["settings_opened"] = app._app_settings is not None or any(
            type(w).__name__.startswith("Settings") for w in Window.children
        )
        result["screen_after_keys"] = app.manager.current
        yield from hold_corner(1.0)
        yield 0.3
        result["screen_after_short_hold"] = app.manager.current
        yield from hold_corner(3.5, x=Window.width - 12)  # another corner: nothing
        result["screen_after_other_corner"] = app.manager.current
        result["alive"] = app.root is not None

    return core, steps


def scenario_staff(out_dir: Path) -> tuple[LockdownCore, Callable[..., Steps]]:
    """Gesture -> wrong PIN -> right PIN -> staff screen (tablet's language) -> back home in the
    resident's language; then 5 wrong PINs lock the keypad, even for the right PIN."""
    core = LockdownCore(config=staff_config())
    core.preferences = TabletPreferences(language="en")

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        flow = app.staff_flow
        yield from settle(app, "home")
        tiles = app.home_screen.tiles()
        result["resident_language"] = app.language
        yield from hold_corner(3.4)
        yield from settle(app, "staff_pin")
        result["pin_screen_language"] = app.language
        result["pin_title"] = flow.pin_screen.ids.title_label.text
        result["tile_calls_after_hold"] = [r for r in core.records if r[0] == "call_requested"]
        yield from type_pin(app, "1111")
        result["wrong_message"] = flow.pin_screen.message
        result["screen_after_wrong"] = app.manager.current
        result["screenshot_pin"] = screenshot(out_dir, "staff-pin.png")
        yield from type_pin(app, STAFF_PIN)
        yield from settle(app, "staff")
        staff = flow.staff_screen
        result["staff_title"] = staff.ids.title_label.text
        result["staff_info"] = {
            "version": staff.ids.version_value.text,
            "connection": staff.ids.connection_value.text,
            "server": staff.ids.server_value.text,
            "tablet": staff.ids.tablet_value.text,
            "microphone": staff.ids.microphone_value.text,
            "speaker": staff.ids.speaker_value.text,
        }
        result["devices_notice"] = staff.ids.devices_notice.text
        result["screenshot_staff"] = screenshot(out_dir, "staff.png")
        result["opened_event"] = [r for r in core.records if r[0] == "staff_screen_opened"]
        # Language: French for the tablet, at once on the staff screen.
        yield from tap(staff.ids.language_fr)
        yield 0.2
        result["language_after_fr"] = app.language
        result["staff_title_fr"] = staff.ids.title_label.text
        # Brightness and volume: stored, and the dim follows.
        staff.ids.brightness_slider.value = 0.4
        staff.ids.volume_slider.value = 0.3
        yield 1.0
        result["dim_alpha"] = round(flow.dim._color.a, 3)
        result["saved"] = [vars(p) for p in core.saved][-1:]
        staff.ids.brightness_slider.value = 1.0
        yield 0.8
        result["dim_alpha_full"] = round(flow.dim._color.a, 3)
        # Back to the residents, in the resident's language.
        yield from tap(staff.ids.back_button)
        yield from settle(app, "home")
        result["back_language"] = app.language
        result["back_tiles_same"] = app.home_screen.tiles() == tiles or bool(
            app.home_screen.tiles()
        )
        # Lock-out: five wrong PINs, then even the right one is refused.
        yield from hold_corner(3.4)
        yield from settle(app, "staff_pin")
        messages = []
        for _ in range(5):
            yield from type_pin(app, "0000")
            messages.append(flow.pin_screen.message)
        result["lockout_messages"] = messages
        yield from type_pin(app, STAFF_PIN)
        result["screen_locked_right_pin"] = app.manager.current
        result["locked_message"] = flow.pin_screen.message
        result["screenshot_locked"] = screenshot(out_dir, "staff-pin-locked.png")
        yield from tap(flow.pin_screen.ids.back_button)
        yield from settle(app, "home")
        result["screen_after_back"] = app.manager.current

    return core, steps


def scenario_reenrol(out_dir: Path) -> tuple[LockdownCore, Callable[..., Steps]]:
    """Re-enrol asks first; "Cancel" keeps everything; "Yes" forgets and shows enrolment."""
    core = LockdownCore(config=staff_config())

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        flow = app.staff_flow
        yield from settle(app, "home")
        yield from hold_corner(3.4)
        yield from settle(app, "staff_pin")
        yield from type_pin(app, STAFF_PIN)
        yield from settle(app, "staff")
        staff = flow.staff_screen
        yield from tap(staff.ids.reenrol_button)
        yield 0.3
        result["confirming"] = staff.confirming_reenrol
        result["screenshot_confirm"] = screenshot(out_dir, "staff-reenrol.png")
        # The question covers the screen: "English" behind it (under the question's text)
        # does not react, and the question stays.
        before = staff.language_code
        yield from tap(staff.ids.language_en)
        result["through_panel"] = [staff.language_code == before, staff.confirming_reenrol]
        yield from tap(staff.ids.confirm_cancel)
        yield 0.2
        result["after_cancel"] = [staff.confirming_reenrol, core.forgotten]
        yield from tap(staff.ids.reenrol_button)
        yield 0.3
        yield from tap(staff.ids.confirm_yes)
        yield from settle(app, "enrolment")
        result["forgotten"] = core.forgotten
        result["home_tiles_after"] = len(app.home_screen.tiles())
        # Before enrolment there is no staff PIN: the gesture opens the staff screen at once.
        yield from hold_corner(3.4)
        yield from settle(app, "staff")
        result["staff_without_pin_when_not_enrolled"] = app.manager.current

    return core, steps


def scenario_leave(out_dir: Path) -> tuple[LockdownCore, Callable[..., Steps]]:
    """The staff gesture, the PIN, then "Leave the kiosk" stops the app."""
    core = LockdownCore(config=staff_config())

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from settle(app, "home")
        yield from hold_corner(3.4)
        yield from settle(app, "staff_pin")
        yield from type_pin(app, STAFF_PIN)
        yield from settle(app, "staff")
        result["before_leave"] = app.manager.current
        app.staff_flow.staff_screen.ids.leave_button.dispatch("on_release")
        result["left_by_staff"] = app.staff_flow.left_by_staff
        yield 5.0  # the app stops: the runner never gets here
        result["still_running"] = True

    return core, steps


SCENARIOS = {
    "keys": scenario_keys,
    "staff": scenario_staff,
    "reenrol": scenario_reenrol,
    "leave": scenario_leave,
}


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
    try:
        app.run()
    except Exception:
        result["ok"] = False
        result["error"] = traceback.format_exc()
    if scenario == "leave" and app.staff_flow.left_by_staff:
        result.setdefault("ok", True)
    result["core_stopped"] = core.stopped
    sys.stdout.write("RESULT:" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
