"""Runs one UI scenario of the Liens app in this process and prints its result as JSON.

Launched by the UI tests as ``python -m tests.ui.driver SCENARIO OUT_DIR`` under Xvfb; the last
line of stdout is ``RESULT:{json}``. A scenario is a generator of steps driven by the Kivy
clock: it yields the seconds to wait before its next step, taps widgets with real touch events
(``UnitTestTouch`` goes through the window and the event loop, like a finger) and fills
``result`` with what it saw.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import traceback
import zlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.config import Config  # noqa: E402

Config.set("graphics", "width", "1280")
Config.set("graphics", "height", "800")
Config.set("graphics", "resizable", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")

from kivy.clock import Clock  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.tests.common import UnitTestTouch  # noqa: E402
from kivymd.uix.label import MDLabel  # noqa: E402

from screens.app import LiensApp  # noqa: E402
from screens.components import palette  # noqa: E402
from screens.components.palette import contrast_ratio  # noqa: E402
from screens.components.scheme import computed_scheme, scheme_colours, scheme_key  # noqa: E402
from tests.ui.fake_core import SIX_CONTACTS, FakeCore, config, contact  # noqa: E402
from tests.ui.limits import GIVE_UP_SECONDS  # noqa: E402

Steps = Generator[float, None, None]
REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENS = REPO / "docs" / "screens"


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> Iterator[float]:
    """Steps that wait until ``condition()`` is true."""
    waited = 0.0
    while not condition():
        if waited > timeout:
            raise TimeoutError("condition not met in time")
        yield 0.05
        waited += 0.05


def wait_settled(widgets: list[Any], timeout: float = 10.0) -> Iterator[float]:
    """Steps that wait until ``widgets`` keep the same place and size over three frames.

    A grid laid out on a loaded machine can still be moving when the scenario wants to tap it:
    a tap aimed at a card's old centre lands on its neighbour.
    """

    def places() -> list[tuple[float, ...]]:
        return [(*w.to_window(w.x, w.y), w.width, w.height) for w in widgets]

    last, stable, waited = places(), 0, 0.0
    while stable < 3:
        if waited > timeout:
            raise TimeoutError("widgets still moving")
        yield 0.05
        waited += 0.05
        now = places()
        stable = stable + 1 if now == last else 0
        last = now


def tap(widget: Any) -> Iterator[float]:
    """A single finger tap at the centre of ``widget``."""
    x, y = widget.to_window(*widget.center)
    touch = UnitTestTouch(x, y)
    touch.touch_down()
    yield 0.08
    touch.touch_up()
    yield 0.05


def screenshot(out_dir: Path, name: str) -> str:
    # Window.screenshot() numbers its files ("home0001.png"): write, then rename.
    written = Path(Window.screenshot(name=str(out_dir / name)))
    path = out_dir / name
    written.replace(path)
    return str(path)


def write_portrait_png(path: Path, size: int = 256) -> None:
    """A small synthetic "photo" (a face-like disc on a warm background), no image library."""
    rows = []
    c = size / 2
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            dx, dy = x - c, y - c * 0.85
            if dx * dx + dy * dy < (size * 0.28) ** 2:
                px = (233, 196, 160)
            elif y > size * 0.72 and abs(dx) < size * 0.42:
                px = (52, 96, 140)
            else:
                px = (200 - y // 4, 170 - y // 6, 120 + y // 5)
            row += bytes(px)
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6))
    png += chunk(b"IEND", b"")
    path.write_bytes(png)


def on_screen(widget: Any) -> bool:
    x0, y0 = widget.to_window(widget.x, widget.y)
    x1, y1 = widget.to_window(widget.right, widget.top)
    return x0 >= 0 and y0 >= 0 and x1 <= Window.width and y1 <= Window.height


def headings(app: LiensApp) -> list[str]:
    box = app.home_screen.ids.sections_box
    return [w.text for w in reversed(box.children) if isinstance(w, MDLabel)]


def tile_names(app: LiensApp) -> list[str]:
    return [t.name for t in app.home_screen.tiles()]


# --- scenarios ---------------------------------------------------------------------------------


def scenario_home(out_dir: Path) -> tuple[FakeCore, Callable[..., Steps]]:
    """Tiles appear with names and initials; a tap records call_requested; Escape is ignored."""
    photo = out_dir / "photo-c1.png"
    write_portrait_png(photo)
    core = FakeCore(
        config=config([("r1", "Jeanne", SIX_CONTACTS)]),
        photo_paths={"c1": str(photo)},
    )

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 6)
        yield 0.5
        tiles = app.home_screen.tiles()
        result["screen"] = app.manager.current
        result["started"] = core.started
        result["tiles"] = [
            {"name": t.name, "initials": t.initials, "photo": bool(t.photo)} for t in tiles
        ]
        result["tile_sizes"] = [list(t.size) for t in tiles]
        result["all_tiles_on_screen"] = all(on_screen(t) for t in tiles)
        result["contrast"] = {
            name: contrast_ratio(text, background)
            for name, (text, background) in palette.TEXT_PAIRS.items()
        }
        result["connection_text_at_start"] = app.home_screen.connection_text
        # The kiosk's stored colour scheme is what KivyMD computes (screens.components.scheme).
        key, colours = computed_scheme(app.theme_cls.theme_style)
        result["scheme_stored_is_computed"] = (
            scheme_key(app.theme_cls) == key and scheme_colours(app.theme_cls) == colours
        )
        result["date_text"] = app.home_screen.date_text
        result["time_text"] = app.home_screen.time_text
        result["screenshot"] = screenshot(out_dir, "home.png")
        events: list[str] = []
        app.home_screen.bind(on_call_requested=lambda _s, approval_id: events.append(approval_id))
        # A tremor's double tap: two taps within the same instant (no clock frame between
        # them, so a loaded machine cannot stretch them past the app's 2 s guard): one request.
        x, y = tiles[1].to_window(*tiles[1].center)
        for _ in range(2):
            touch = UnitTestTouch(x, y)
            touch.touch_down()
            touch.touch_up()
        yield 0.2
        result["dispatched"] = events
        result["records"] = list(core.records)
        Window.dispatch("on_keyboard", 27, 9, "", [])
        yield 0.2
        result["alive_after_escape"] = app.root is not None and app.manager.current == "home"

    return core, steps


def scenario_update(out_dir: Path) -> tuple[FakeCore, Callable[..., Steps]]:
    """A new config (one contact revoked, one approved) updates the home screen live."""
    first = [SIX_CONTACTS[0], SIX_CONTACTS[1], SIX_CONTACTS[2]]
    first_config = config([("r1", "Jeanne", first)])
    core = FakeCore(config=first_config)

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 3)
        result["before"] = tile_names(app)
        tiles_before = app.home_screen.tiles()
        updated = [SIX_CONTACTS[0], SIX_CONTACTS[2], contact("c9", "ap-9", "Paul Girard", "Ami")]
        core.emit_from_thread(
            {
                "event": "config",
                "revision": 2,
                "config": config([("r1", "Jeanne", updated)], revision=2),
            }
        )
        yield from wait_until(lambda: "Paul Girard" in tile_names(app))
        yield 0.3  # let the new tiles be laid out, as a finger would
        result["after"] = tile_names(app)
        result["approval_ids"] = [t.approval_id for t in app.home_screen.tiles()]
        tiles_after = app.home_screen.tiles()
        yield from tap(app.home_screen.tiles()[2])
        result["records"] = list(core.records)
        result["old_tiles_orphaned"] = all(t.get_root_window() is None for t in tiles_before)

        core.emit_from_thread({"event": "disconnected", "reason": "network"})
        yield from wait_until(lambda: app.home_screen.connection_text != "")
        yield 0.1
        result["offline_text"] = app.home_screen.connection_text
        result["offline_kept_tiles"] = app.home_screen.tiles() == tiles_after
        yield 0.5
        result["screenshot_offline"] = screenshot(out_dir, "home-offline.png")
        core.emit_from_thread({"event": "connected"})
        yield from wait_until(lambda: app.home_screen.connection_text == "")
        result["online_text"] = app.home_screen.connection_text

        two = config(
            [("r1", "Jeanne", SIX_CONTACTS[:3]), ("r2", "Marcel", SIX_CONTACTS[3:5])], revision=3
        )
        core.emit_from_thread({"event": "config", "revision": 3, "config": two})
        # Two residents: the picker asks who is using the tablet; each sees only their own.
        picker = app.who.picker_screen
        yield from wait_until(
            lambda: (
                app.manager.current == "picker"
                and len(picker.tiles()) == 2
                and not app.manager.transition.is_active
            ),
            timeout=15,
        )
        yield 0.4
        result["picker_names"] = [t.name for t in picker.tiles()]
        yield from tap(picker.tiles()[1])
        yield from wait_until(
            lambda: (
                app.manager.current == "home"
                and len(app.home_screen.tiles()) == 2
                and not app.manager.transition.is_active
            ),
            timeout=15,
        )
        yield 0.4
        result["screenshot_residents"] = screenshot(out_dir, "home-residents.png")
        result["headings"] = headings(app)
        result["tiles_two"] = tile_names(app)
        yield from tap(app.home_screen.tiles()[1])
        result["records_two"] = core.records[-1:]

        empty = config([("r1", "Jeanne", [])], revision=4)
        core.emit_from_thread({"event": "config", "revision": 4, "config": empty})
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 0)
        yield 0.3
        result["empty_text"] = app.home_screen.empty_text
        result["empty_visible"] = app.home_screen.ids.empty_label.opacity == 1
        result["screenshot_empty"] = screenshot(out_dir, "home-empty.png")

        core.emit_from_thread({"event": "config", "revision": 5, "config": first_config})
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 3)
        core.emit_from_thread({"event": "retired"})
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 0)
        result["retired_text"] = app.home_screen.empty_text

    return core, steps


def scenario_enrolment(out_dir: Path) -> tuple[FakeCore, Callable[..., Steps]]:
    """Digits, erase, validate on the keypad; an invalid code's sentence; then success."""
    core = FakeCore(config=config([("r1", "Jeanne", SIX_CONTACTS[:2])]), needs_enrolment=True)
    core.enrol_failures = ["invalid_code"]

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        screen = app.enrolment_screen
        yield from wait_until(lambda: app.manager.current == "enrolment")
        yield 0.4
        result["server_prefill"] = screen.server_url
        keys = {k.key: k for k in screen.ids.keypad.children}
        result["key_sizes"] = {k: list(w.size) for k, w in keys.items()}
        for key in ["4", "8", "1", "5", "erase", "2", "7", "3"]:
            yield from tap(keys[key])
        result["code_typed"] = screen.code
        result["code_text"] = screen.code_text
        yield from tap(keys["validate"])
        yield from wait_until(lambda: screen.error_reason != "")
        yield 0.3
        result["enrol_calls"] = list(core.enrol_calls)
        result["error_message"] = screen.message
        result["screen_after_error"] = app.manager.current
        result["screenshot"] = screenshot(out_dir, "enrolment.png")
        yield from tap(keys["validate"])
        yield from wait_until(lambda: app.manager.current == "home", timeout=5)
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 2)
        result["screen_after_success"] = app.manager.current
        result["enrol_calls_after"] = list(core.enrol_calls)
        result["started"] = core.started
        result["code_after_success"] = screen.code

    return core, steps


def scenario_tile_copies(out_dir: Path) -> tuple[FakeCore, Callable[..., Steps]]:
    """A portrait is drawn from its tile-size copy once the copy exists (kiosk.tile_photos)."""
    from PIL import Image

    from kiosk import tile_photos

    photos = out_dir / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    photo = photos / "c1.jpg"  # as the photo cache holds it: a 640 px JPEG
    Image.new("RGB", (640, 640), (200, 170, 120)).save(photo, quality=85)
    core = FakeCore(config=config([("r1", "Jeanne", SIX_CONTACTS)]), photo_paths={"c1": str(photo)})
    copies = photos / tile_photos.FOLDER

    def steps(app: LiensApp, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 6)
        yield 0.3
        first = app.home_screen.tiles()[0]
        result["first"] = {"photo": first.photo, "picture": first.picture}
        # The missing copy is made in the background a few seconds after the render.
        yield from wait_until(lambda: copies.is_dir() and any(copies.iterdir()), timeout=20)
        result["copies"] = sorted(p.name for p in copies.iterdir())
        # The next render (here a new config; on a tablet, the next start) draws the copy.
        renamed = [*SIX_CONTACTS[:5], {**SIX_CONTACTS[5], "display_name": "Dr Lefèvre"}]
        core.emit_from_thread(
            {"event": "config", "revision": 2, "config": config([("r1", "Jeanne", renamed)], 2)}
        )
        yield from wait_until(lambda: "Dr Lefèvre" in tile_names(app))
        yield 0.3
        tile = app.home_screen.tiles()[0]
        texture = tile.ids.photo.texture
        result["second"] = {
            "photo": tile.photo,
            "picture": tile.picture,
            "source": tile.ids.photo.source,
            "texture_size": list(texture.size) if texture is not None else None,
            "picture_side": round(min(tile.ids.picture.size)),
        }
        with Image.open(tile.picture) as image:
            result["second"]["copy_size"] = list(image.size)

    return core, steps


SCENARIOS = {
    "home": scenario_home,
    "update": scenario_update,
    "enrolment": scenario_enrolment,
    "tile_copies": scenario_tile_copies,
}


class Runner:
    """Drives a scenario's steps from the Kivy clock and stops the app at the end."""

    def __init__(self, app: LiensApp, steps: Steps, result: dict[str, Any]) -> None:
        self.app = app
        self.steps = steps
        self.result = result

    def step(self, *_args: Any) -> None:
        try:
            delay = next(self.steps)
        except StopIteration:
            self.result.setdefault("ok", True)
            self.app.stop()
            return
        except Exception:
            self.result["ok"] = False
            self.result["error"] = traceback.format_exc()
            self.app.stop()
            return
        Clock.schedule_once(self.step, delay)


def drive(
    argv: list[str],
    scenarios: dict[str, Callable[[Path], tuple[Any, Callable[..., Steps]]]],
    *,
    timeout: float,
    publish: Callable[[Path], bool] = lambda _png: True,
    after: Callable[[Any, dict[str, Any]], None] = lambda _core, _result: None,
) -> int:
    """Run scenario ``argv[0]`` of ``scenarios`` with its out dir ``argv[1]``; print RESULT.

    Shared by every driver module: one app, its steps from the Kivy clock, a time limit, the
    screenshots copied to docs/screens/ when ``LIENS_UPDATE_DOCS_SCREENS=1`` (those ``publish``
    accepts).
    """
    scenario, out_dir = argv[0], Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    core, steps = scenarios[scenario](out_dir)
    app = LiensApp(core, fullscreen=False)
    result: dict[str, Any] = {"scenario": scenario}
    runner = Runner(app, steps(app, result), result)
    Clock.schedule_once(runner.step, 0.3)

    def give_up(_dt: float) -> None:
        result["ok"] = False
        result["error"] = "scenario timed out"
        app.stop()

    Clock.schedule_once(give_up, timeout)
    app.run()
    after(core, result)
    if os.environ.get("LIENS_UPDATE_DOCS_SCREENS") == "1":
        DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
        for png in out_dir.glob("*.png"):
            if publish(png):
                shutil.copy(png, DOCS_SCREENS / png.name)
    sys.stdout.write("RESULT:" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result.get("ok") else 1


def main(argv: list[str]) -> int:
    return drive(
        argv,
        SCENARIOS,
        timeout=GIVE_UP_SECONDS,  # a deadline, not a measure (tests/ui/limits.py)
        publish=lambda png: not png.name.startswith("photo-"),
        after=lambda core, result: result.__setitem__("core_stopped", core.stopped),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
