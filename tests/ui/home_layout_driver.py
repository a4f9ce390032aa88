"""The home's tiles at one tablet size, for 1 to 6 contacts, senior and youth, day and night.

``python -m tests.ui.home_layout_driver OUT_DIR WIDTH HEIGHT [SCREENSHOT_DIR]`` under Xvfb, with
``KIVY_DPI`` and ``KIVY_METRICS_DENSITY`` set to the simulated 10" screen's by the caller
(``tests/ui/test_home_layout.py``). The real app runs over a fake core; each case is a new
configuration (as the backend would publish it) whose night window covers now or not, so the
home shows the night line and greyed tiles or not, whatever the time of the run. For each case
it records, in window pixels, every tile's rectangle, the scroll area's, the activities row's,
the header's and the youth's "Ask for a contact" button's; the test checks them. The last line
of stdout is ``RESULT:{json}``; with a SCREENSHOT_DIR, 1, 3 and 6 contacts are saved there.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")

WIDTH, HEIGHT = int(sys.argv[2]), int(sys.argv[3])

from kivy.config import Config  # noqa: E402

Config.set("graphics", "width", str(WIDTH))
Config.set("graphics", "height", str(HEIGHT))
Config.set("graphics", "resizable", "0")
Config.set("input", "mouse", "mouse,disable_multitouch")

from kivy.clock import Clock  # noqa: E402

from screens.app import LiensApp  # noqa: E402
from tests.ui.driver import (  # noqa: E402
    SIX_CONTACTS,
    Runner,
    Steps,
    screenshot,
    wait_settled,
    wait_until,
    write_portrait_png,
)
from tests.ui.fake_core import FakeCore, config  # noqa: E402
from tests.ui.night import at_night  # noqa: E402

LOOKS = ("senior", "youth")
COUNTS = (1, 2, 3, 4, 5, 6)
SHOTS = {1, 3, 6}  # the contact counts saved as screenshots


def case_config(look: str, night: bool, count: int, revision: int) -> dict[str, Any]:
    data = config([("r1", "Jeanne", SIX_CONTACTS[:count])], revision=revision)
    resident = data["residents"][0]
    resident["kind"] = look
    if look == "youth":
        resident["first_name"] = "Léa"
    return at_night(data, night)


def rect(widget: Any) -> list[float]:
    x0, y0 = widget.to_window(widget.x, widget.y)
    x1, y1 = widget.to_window(widget.right, widget.top)
    return [round(v, 1) for v in (x0, y0, x1, y1)]


def run_steps(app: LiensApp, core: FakeCore, shots: Path | None, result: dict[str, Any]) -> Steps:
    home = app.home_screen
    assert home is not None
    yield from wait_until(lambda: app.manager.current == "home", timeout=20)
    cases: list[dict[str, Any]] = []
    result["cases"] = cases  # filled as it goes: a time-out still shows how far it got
    revision = 1
    # Night after day with the same contacts: only the tiles' states and the height change,
    # so the home resizes its tiles in place (no rebuild): half the cases cost little.
    for look in LOOKS:
        for count in COUNTS:
            for night in (False, True):
                revision += 1
                started = time.monotonic()
                data = case_config(look, night, count, revision)
                # Straight to the home's router (what the app does with a config, minus the
                # picker's and the activities' refresh, which this test does not look at).
                app.who.config = data
                app.who.refresh_home()
                yield from wait_until(
                    lambda c=count, lk=look, n=night: (
                        len(home.tiles()) == c and home.look == lk and home.night == n
                    ),
                    timeout=20,
                )
                tiles = home.tiles()
                watched = [*tiles, home.ids.scroll, home.ids.activities_slot]
                yield from wait_settled(watched, timeout=20)
                name = f"{look}-{'night' if night else 'day'}-{count}"
                case = {
                    "name": name,
                    "look": look,
                    "night": night,
                    "count": count,
                    "screen": app.manager.current,
                    "tiles": [rect(t) for t in tiles],
                    "pictures": [rect(t.ids.picture) for t in tiles],
                    "names": [rect(t.ids.name) for t in tiles],
                    "scroll": rect(home.ids.scroll),
                    "activities": rect(home.ids.activities_slot),
                    "activity_children": len(home.ids.activities_slot.children),
                    "header": rect(home.ids.header),
                    "requests": [rect(b) for b in home.request_buttons()],
                    "availability": sorted({t.availability for t in tiles}),
                }
                case["seconds"] = round(time.monotonic() - started, 2)
                cases.append(case)
                if shots is not None and count in SHOTS:
                    case["screenshot"] = screenshot(shots, f"home-{name}-{WIDTH}x{HEIGHT}.png")
    result["window"] = [WIDTH, HEIGHT]


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    photo = out_dir / "photo-c1.png"
    write_portrait_png(photo)
    core = FakeCore(
        config=case_config("senior", False, 6, 1),
        photo_paths={"c1": str(photo)},
        connection_state="online",
    )
    app = LiensApp(core, fullscreen=False)
    result: dict[str, Any] = {}
    shots = Path(argv[3]) if len(argv) > 3 else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    runner = Runner(app, run_steps(app, core, shots, result), result)
    Clock.schedule_once(runner.step, 0.5)

    def give_up(_dt: float) -> None:
        result["ok"] = False
        result["error"] = "timed out"
        app.stop()

    Clock.schedule_once(give_up, 280)
    app.run()
    sys.stdout.write("RESULT:" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
