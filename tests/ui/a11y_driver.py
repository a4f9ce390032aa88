"""Opens every screen of the Liens app and measures it (``screens.components.a11y``).

``python -m tests.ui.a11y_driver OUT_DIR WIDTH HEIGHT LANG [SCREENSHOT_DIR]``, under Xvfb, with
``KIVY_DPI`` and ``KIVY_METRICS_DENSITY`` set to the simulated screen's values by the caller.
Screens are listed from the app's ScreenManager, so a new screen is measured without touching
this file; the ones known here are first given something to show (a call, a contact, a PIN).
The last line of stdout is ``RESULT:{json}``; with a SCREENSHOT_DIR, each screen is saved as
``{screen}-{lang}-{width}x{height}.png`` (``make screenshots``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")

WIDTH, HEIGHT = int(sys.argv[2]), int(sys.argv[3])

from kivy.config import Config  # noqa: E402

Config.set("graphics", "width", str(WIDTH))
Config.set("graphics", "height", str(HEIGHT))
Config.set("graphics", "resizable", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")

from argon2 import PasswordHasher  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.metrics import Metrics  # noqa: E402
from kivy.tests.common import UnitTestTouch  # noqa: E402
from kivy.uix.button import Button  # noqa: E402
from kivy.uix.scrollview import ScrollView  # noqa: E402

from kiosk.calls.model import Direction  # noqa: E402
from kiosk.settings import TabletPreferences  # noqa: E402
from screens.app import LiensApp, ShownCall  # noqa: E402
from screens.components import a11y  # noqa: E402
from screens.home import look as looks  # noqa: E402
from tests.ui.driver import (  # noqa: E402
    SIX_CONTACTS,
    Runner,
    Steps,
    wait_settled,
    wait_until,
    write_portrait_png,
)
from tests.ui.fake_core import FakeCore, contact  # noqa: E402
from tests.ui.night import at_night  # noqa: E402

_hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
SETTLE = 0.5  # seconds for a screen's kv bindings and layout to settle, even under load


class A11yCore(FakeCore):
    """A fake core with what the staff screen reads."""

    def __init__(self, language: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preferences = TabletPreferences(language=language)
        self.app_version = "0.1.0"
        self.tablet_name = "Salon du 2e"

    def media_devices(self) -> dict[str, bool | None]:
        return {"microphone": None, "speaker": None}

    def save_preferences(self, preferences: TabletPreferences) -> None:
        self.preferences = preferences


def tablet_config(language: str) -> dict[str, Any]:
    youth_contacts = [
        contact("y1", "ap-y1", "Sophie", "Mère"),
        contact("y2", "ap-y2", "Karim", "Frère"),
        contact("y3", "ap-y3", "Mamie Rose", "Grand-mère"),
    ]
    return {
        "revision": 1,
        "tablet": {"id": "tab-001", "name": "Salon du 2e"},
        "home": {"id": "home-1", "name": "EHPAD Les Tilleuls", "timezone": "Europe/Paris"},
        "residents": [
            {
                "id": "r1",
                "first_name": "Jeanne",
                "kind": "senior",
                "language": language,
                "contacts": SIX_CONTACTS,
            },
            {
                "id": "r2",
                "first_name": "Léa",
                "kind": "youth",
                "language": language,
                "pin_hash": _hasher.hash("1234"),
                "contacts": youth_contacts,
            },
        ],
        "staff_pins": [{"staff_id": "s1", "name": "Claire", "pin_hash": _hasher.hash("2468")}],
    }


def known_names(config: dict[str, Any]) -> set[str]:
    names = set()
    for resident in config["residents"]:
        names.add(resident["first_name"])
        for c in resident["contacts"]:
            names.add(c["display_name"])
    return names


# --- what each known screen is given to show ---------------------------------------------------


def _call(app: LiensApp, direction: str = "outgoing") -> ShownCall:
    app._cancel_call_timer()
    app.call = ShownCall(
        call_id="call-1",
        approval_id="ap-1",
        direction=Direction(direction),
        name="Marie Dupont",
        photo=str(app.photo_paths.get("c1", "")),
        initials="MD",
    )
    return app.call


def _resident(app: LiensApp, resident_id: str) -> None:
    who = getattr(app, "who", None)
    if who is not None:
        who.open(resident_id)


PREPARE: dict[str, Callable[[LiensApp], None]] = {
    "home": lambda app: _resident(app, "r1"),
    "picker": lambda app: app.who.show_start(),
    "pin": lambda app: app.who.choose("r2"),
    "call_outgoing": lambda app: (_call(app), app._show_outgoing("ringing")),
    "call_incoming": lambda app: app._show_incoming(_call(app, "incoming"), 30),
    "call_incall": lambda app: app._show_incall(_call(app)),
    "call_message": lambda app: app._show_message(
        _call(app),
        "Marie Dupont ne répond pas. Vous pourrez rappeler plus tard."
        if app.language == "fr"
        else "Marie Dupont does not answer. You can call again later.",
        show_back=True,
        seconds=3600,
    ),
    "call_supervise": lambda app: app._show_supervision(
        _call(app), {"supervision": "required", "pin_attempts_left": 3}
    ),
    "request_contact": lambda app: (_resident(app, "r2"), _show(app, "request_contact")),
    "staff_pin": lambda app: app.staff_flow.open(),
    "staff": lambda app: (app.staff_flow.open(), app.staff_flow._show_staff_screen()),
}


def _show(app: LiensApp, name: str) -> None:
    app.manager.current = name


def settled(app: LiensApp, timeout: float = 20.0) -> Steps:
    """Wait for the screen transition to end (slow on a loaded machine), then for the layout."""
    waited = 0.0
    while app.manager.transition.is_active and waited < timeout:
        yield 0.05
        waited += 0.05
    yield SETTLE


def reset(app: LiensApp, language: str) -> None:
    """Between screens: no call, no staff screen, the residents' language."""
    app._cancel_call_timer()
    app.call = None
    if app.manager.current in ("staff", "staff_pin"):
        app.staff_flow.close()
    app.language = language


def run_steps(app: LiensApp, core: A11yCore, result: dict[str, Any], args: dict[str, Any]) -> Steps:
    language, shots = args["language"], args["screenshots"]
    yield 1.0
    dpi = float(Metrics.dpi)
    result["dpi"] = dpi
    result["density"] = float(Metrics.density)
    result["window"] = [Window.width, Window.height]
    names = known_names(core.config or {})
    clear = tuple(Window.clearcolor)
    app.build_call_screens()  # built just after the first frame anyway; here, surely
    screens = list(app.manager.screen_names)
    result["screens"] = screens
    measures = []
    for name in screens:
        reset(app, language)
        yield 0.1
        prepare = PREPARE.get(name)
        try:
            if prepare is not None:
                prepare(app)
        except Exception:
            result.setdefault("prepare_errors", {})[name] = traceback.format_exc(limit=3)
        if app.manager.current != name:
            app.manager.current = name
        yield from settled(app)
        if app.manager.current != name:
            result.setdefault("not_shown", []).append(name)
            continue
        screen = app.manager.get_screen(name)
        m = a11y.measure_screen(
            screen,
            name=name,
            dpi=dpi,
            window_size=(Window.width, Window.height),
            clear_color=clear,  # type: ignore[arg-type]
            names=names,
        )
        measures.append(m.to_json())
        if shots:
            path = Path(shots) / f"{name}-{language}-{WIDTH}x{HEIGHT}.png"
            written = Path(Window.screenshot(name=str(path)))
            written.replace(path)
        yield from touch_walk(app, screen, name, result.setdefault("touch_walk", {}))

    # The memory game's boards, whose stages are layers over each other: a finger on each card
    # must reach that card (at 1280x800 the hidden "change the number of cards" of the "Bravo"
    # layer took card 13's touches on the 8-pair board).
    reset(app, language)
    yield 0.1
    app.manager.current = "activity_memory"
    yield from settled(app)
    memory = app.manager.get_screen("activity_memory")
    for pairs in (4, 6, 8):
        memory.start_game(pairs)
        yield from wait_until(lambda n=pairs: len(memory.cards()) == 2 * n, timeout=10)
        yield from settled(app)
        yield from touch_walk(app, memory, "activity_memory", result["touch_walk"])
    result["touch_walk"]["memory_boards"] = [4, 6, 8]
    memory.choose_again()

    # The night look (quiet time): greyed tiles, the night line and the shade over the home,
    # senior and youth. A night window around now makes it night whatever the hour of the run.
    night_config = at_night({**(core.config or {}), "revision": 2})
    core.emit_from_thread({"event": "config", "revision": 2, "config": night_config})
    for label, resident_id, look in (
        ("home_night", "r1", "senior"),
        ("home_youth_night", "r2", "youth"),
    ):
        reset(app, language)
        yield 0.1
        _resident(app, resident_id)
        if app.manager.current != "home":
            app.manager.current = "home"
        home = app.home_screen
        expected = [
            c["display_name"]
            for r in night_config["residents"]
            if r["id"] == resident_id
            for c in r["contacts"]
        ]

        def shown(h: Any = home, names: list[str] = expected, lk: str = look) -> bool:
            tiles = h.tiles()
            return (
                h.night
                and h.look == lk
                and [t.name for t in tiles] == names
                and all(t.availability == "later" for t in tiles)
            )

        yield from wait_until(shown, timeout=30)
        yield from settled(app)
        yield from wait_settled([*home.tiles(), *home.request_buttons()], timeout=20)
        m = a11y.measure_screen(
            home,
            name=label,
            dpi=dpi,
            window_size=(Window.width, Window.height),
            clear_color=clear,  # type: ignore[arg-type]
            names=names,
            shade=looks.NIGHT_SHADE,
        )
        measures.append(m.to_json())
        result.setdefault("extra_screens", []).append(label)
        if shots:
            path = Path(shots) / f"{label}-{language}-{WIDTH}x{HEIGHT}.png"
            written = Path(Window.screenshot(name=str(path)))
            written.replace(path)
    result["measures"] = measures

    # Press feedback: a tile's pressed look must be drawn in the frame that carries the touch.
    reset(app, language)
    _resident(app, "r1")
    app.manager.current = "home"
    yield from settled(app)
    tiles = app.home_screen.tiles()
    yield from wait_settled(tiles, timeout=20)
    if tiles:
        tile = tiles[0]
        before = [tile.state, list(tile.md_bg_color)]
        seen: dict[str, Any] = {}
        yield from press_and_watch(tile, lambda: tile.state == "down", seen)
        seen["bg"] = [round(c, 3) for c in tile.md_bg_color] if seen.get("pressed") else None
        # Slide off the tile before lifting: no call is placed.
        touch = seen.pop("touch")
        touch.touch_move(touch.x, 2)
        yield 0.1
        touch.touch_up()
        yield 0.2
        # The floor of this machine (Xvfb, llvmpipe, its load now): a bare Kivy Button pressed
        # the same way, in the same window.
        bare = Button(text="", size_hint=(None, None), size=(200, 200), pos=(0, 0))
        Window.add_widget(bare)
        yield 0.3
        baseline: dict[str, Any] = {}
        yield from press_and_watch(bare, lambda: bare.state == "down", baseline)
        baseline.pop("touch").touch_up()
        yield 0.2
        Window.remove_widget(bare)
        result["feedback"] = {
            "before_state": before[0],
            "before_bg": [round(c, 3) for c in before[1]],
            "pressed_state": "down" if seen.get("pressed") else None,
            "pressed_bg": seen["bg"],
            "frames": seen.get("frames"),
            "ms": seen.get("ms"),
            "bare_button_frames": baseline.get("frames"),
            "bare_button_ms": baseline.get("ms"),
            "state_after_slide_off": tile.state,
            "calls_after_slide_off": [r for r in core.records if r[0] == "call_requested"],
        }


def _related(a: Any, b: Any) -> bool:
    """Whether ``a`` is ``b`` or one holds the other (a button inside a card, say)."""
    for inner, outer in ((a, b), (b, a)):
        node = inner
        while node is not None:
            if node is outer:
                return True
            parent = node.parent
            node = parent if parent is not node else None
    return False


def touch_walk(app: LiensApp, screen: Any, name: str, walk: dict[str, Any]) -> Steps:
    """A finger on the centre of every visible touch target of ``screen``: the target (or a
    widget inside it) must be the one that takes the touch, not a neighbour or a hidden layer
    on top (the memory game's hidden "change the number of cards" took card 13's touches).

    The finger then slides off the screen before lifting: nothing is released (no call placed,
    no screen changed). A touch under a ScrollView that waits to tell a tap from a drag is
    handed to the widget under it after ``scroll_timeout`` and three frames: the walk waits for
    that.
    """
    size = (Window.width, Window.height)
    targets = [
        w for w in a11y.visible_widgets(screen, size) if a11y.is_touch_target(w) and not w.disabled
    ]
    walk.setdefault("targets", 0)
    wrong = walk.setdefault("wrong", [])
    untaken = walk.setdefault("untaken", [])
    for target in targets:
        if app.manager.current != name:
            break
        x, y = target.to_window(*target.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        waits = [
            float(g.scroll_timeout) / 1000 for g in _grabbed(touch) if isinstance(g, ScrollView)
        ]
        if waits:
            # Kivy's ScrollView hands the touch on after its timeout and at least 3 frames.
            yield max(waits)
            waited = 0.0
            while waited < 2.0 and not any(a11y.is_touch_target(g) for g in _grabbed(touch)):
                yield 0.05
                waited += 0.05
        takers = [g for g in _grabbed(touch) if a11y.is_touch_target(g)]
        walk["targets"] += 1
        if not takers:
            grabbed = ", ".join(type(g).__name__ for g in _grabbed(touch)) or "nothing"
            untaken.append(f"{name}: {a11y.widget_path(target)} (grabbed: {grabbed})")
        elif not any(_related(t, target) for t in takers):
            wrong.append(
                f"{name}: {a11y.widget_path(target)} at ({x:.0f}, {y:.0f}) was taken by "
                + ", ".join(a11y.widget_path(t) for t in takers)
            )
        touch.touch_move(-500, -500)
        touch.touch_up()
        yield 0


def _grabbed(touch: Any) -> list[Any]:
    return [g for g in (ref() for ref in touch.grab_list) if g is not None]


def press_and_watch(widget: Any, pressed: Callable[[], bool], seen: dict[str, Any]) -> Steps:
    """Put a finger on ``widget`` and count the frames drawn until one shows it pressed.

    Kivy dispatches the touch queued here in the next frame's input pass, before that frame is
    drawn; ``frames`` is the number of the first drawn frame (``on_flip``) in which
    ``pressed()`` holds: 1 means the frame that carried the touch. ``ms`` is the time from the
    touch to that frame on the wall clock (a loaded machine stretches it).
    """
    x, y = widget.to_window(*widget.center)
    touch = UnitTestTouch(x, y)
    seen.update(frames=None, ms=None, pressed=False, touch=touch)
    flips = {"n": 0}
    started = time.perf_counter()

    def on_flip(*_args: Any) -> None:
        flips["n"] += 1
        if pressed() and not seen["pressed"]:
            seen.update(pressed=True, frames=flips["n"])
            seen["ms"] = round((time.perf_counter() - started) * 1000, 1)

    Window.bind(on_flip=on_flip)
    touch.touch_down()
    waited = 0.0
    while not seen["pressed"] and waited < 10.0:
        yield 0.05
        waited += 0.05
    Window.unbind(on_flip=on_flip)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    language = argv[3]
    shots = argv[4] if len(argv) > 4 else ""
    out_dir.mkdir(parents=True, exist_ok=True)
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    photo = out_dir / "photo-c1.png"
    write_portrait_png(photo)
    # Day: a night window far from now, so the day's screens look the same whatever the hour
    # of the run (the kiosk's default night, 21:00-08:00, greyed an evening run's home).
    config = at_night(tablet_config(language), night=False)
    core = A11yCore(
        language, config=config, photo_paths={"c1": str(photo)}, connection_state="online"
    )
    app = LiensApp(core, fullscreen=False)
    app.photo_paths = {"c1": str(photo)}
    result: dict[str, Any] = {"language": language, "size": [WIDTH, HEIGHT]}
    runner = Runner(
        app, run_steps(app, core, result, {"language": language, "screenshots": shots}), result
    )
    Clock.schedule_once(runner.step, 0.5)

    def give_up(_dt: float) -> None:
        result["ok"] = False
        result["error"] = "timed out"
        app.stop()

    Clock.schedule_once(give_up, 300)
    app.run()
    (out_dir / "result.json").write_text(json.dumps(result, indent=1))
    sys.stdout.write(
        "RESULT:"
        + json.dumps(
            {k: v for k, v in result.items() if k != "measures"}
            | {"file": str(out_dir / "result.json")}
        )
        + "\n"
    )
    sys.stdout.flush()
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
