"""The real tablet app over a real ``KioskCore``: family photos, before and after staff approve.

Launched by ``tests/browser/test_photos_e2e.py`` as
``python -m tests.ui.photos_live_driver DATA_DIR OUT_DIR`` under Xvfb, on a kiosk data dir that
is already enrolled with a running backend (what ``liens kiosk --windowed`` runs, plus a
scenario on the Kivy clock). The photos reach it the real way: config over MQTT, files through
``kiosk.photos.PhotoSync`` from the backend's photo API. The conversation, one line each way at
a time (``NAME:{json}`` from here, a bare word from the test):

1. ``READY:{"resident_id": ..., "activities": [...]}`` once the home shows the lone
   resident's row of activities.
2. The test answers ``BEFORE`` once the relative has sent photos that staff have not approved
   yet; the slideshow is opened with real taps and its state reported:
   ``EMPTY:{"count": 0, "empty_text": ..., "files": [...]}``, then back home.
3. The test answers ``GO`` once staff have approved them; the app waits until three photos are
   in its cache, opens the slideshow again and walks through it with the big arrow:
   ``SHOWN:{"slides": [{"source", "caption", "sender", "position", "new", "texture"}, ...]}``.
4. ``RESULT:{json}`` after the app has stopped (always the last line, also on failure).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("KIVY_NO_ARGS", "1")

from screens import configure_window  # noqa: E402

configure_window(fullscreen=False)  # 1280x800 in a window, as `liens kiosk --windowed`

from kivy.clock import Clock  # noqa: E402
from kivy.config import Config  # noqa: E402

Config.set("input", "mouse", "mouse,disable_multitouch")

from kiosk.core import KioskCore  # noqa: E402
from kiosk.settings import KioskSettings  # noqa: E402
from screens.app import LiensApp  # noqa: E402
from tests.ui.driver import (  # noqa: E402
    Runner,
    Steps,
    screenshot,
    tap,
    wait_settled,
    wait_until,
)
from tests.ui.live_driver import read_commands, say, wait_for_command  # noqa: E402

GIVE_UP_SECONDS = 120  # a safety net only: the test's own deadlines are shorter
EXPECTED_PHOTOS = 3


def on_screen_now(app: LiensApp, name: str) -> bool:
    return app.manager.current == name and not app.manager.transition.is_active


def photos_tile(app: LiensApp) -> Any:
    return next((t for t in app.activities.row.tile_widgets() if t.key == "photos"), None)


def open_photos(app: LiensApp) -> Steps:
    """From the home, a real tap on the "Photos" tile; returns once the slideshow is still."""
    yield from wait_until(lambda: on_screen_now(app, "home"), timeout=20)
    tile = photos_tile(app)
    yield from wait_settled([tile])
    yield from tap(tile)
    yield from wait_until(lambda: on_screen_now(app, "activity_photos"), timeout=20)


def back_home(app: LiensApp, screen: Any) -> Steps:
    yield from wait_settled([screen.ids.back])
    yield from tap(screen.ids.back)
    yield from wait_until(lambda: on_screen_now(app, "home"), timeout=20)


def drawn(frames: int = 3) -> Steps:
    """Steps that wait until the window has drawn ``frames`` more frames: what a screenshot
    reads is the last frame drawn, not the widgets' state of this instant."""
    target = Clock.frames_displayed + frames
    yield from wait_until(lambda: Clock.frames_displayed >= target, timeout=10)


def slide(screen: Any) -> dict[str, Any]:
    """What the slideshow shows now, read from its widgets."""
    picture = screen.ids.photo
    return {
        "source": Path(picture.source).name if picture.source else "",
        "caption": screen.ids.caption.text,
        "sender": screen.ids.sender.text,
        "position": screen.ids.position.text,
        "new": screen.ids.new_badge.text if screen.ids.new_badge.opacity == 1 else "",
        "texture": list(picture.texture_size) if picture.texture is not None else None,
        "visible": picture.opacity == 1,
    }


def cached_files(core: KioskCore) -> list[str]:
    return sorted(p.name for p in core.photos.folder.glob("*.jpg"))


def photos_steps(
    app: LiensApp, core: KioskCore, out_dir: Path, commands: queue.Queue[str], result: dict
) -> Steps:
    # 1. The lone resident's home, with their activities (enrolment, MQTT, config: generous).
    try:
        yield from wait_until(lambda: photos_tile(app) is not None, timeout=40)
    except TimeoutError:
        raise TimeoutError(
            f"no photos tile: screen={app.manager.current} state={core.connection_state} "
            f"config={'yes' if core.config else 'no'}"
        ) from None
    resident = app.activities.resident or {}
    rid = str(resident.get("resident_id", ""))
    result["activities"] = [t.key for t in app.activities.row.tile_widgets()]
    say("READY", {"resident_id": rid, "activities": result["activities"]})

    # 2. Sent by the relative, not approved yet: the slideshow has nothing to show.
    yield from wait_for_command(commands, "BEFORE", timeout=60)
    screen = app.activities.screen("photos")
    yield from open_photos(app)
    result["before"] = {
        "count": int(screen.count),
        "empty_text": screen.ids.empty.text,
        "empty_visible": screen.ids.empty.opacity == 1,
        "shown": slide(screen),
        "files": cached_files(core),
    }
    yield from drawn()
    result["screenshot_before"] = screenshot(out_dir, "photos-live-before.png")
    yield from back_home(app, screen)
    say("EMPTY", result["before"])

    # 3. Approved: the config lists them, the cache downloads them, the slideshow shows them.
    yield from wait_for_command(commands, "GO", timeout=60)
    signalled = time.monotonic()
    yield from wait_until(
        lambda: len(core.photos.shown(app.config_data, rid)) >= EXPECTED_PHOTOS, timeout=40
    )
    result["cached_after_s"] = round(time.monotonic() - signalled, 2)
    yield from open_photos(app)
    result["opened_after_s"] = round(time.monotonic() - signalled, 2)
    slides = []
    for index in range(EXPECTED_PHOTOS):
        # The picture is drawn from its file once Kivy has loaded it: wait for its texture.
        yield from wait_until(lambda: screen.ids.photo.texture is not None, timeout=10)
        yield from wait_until(lambda: screen.ids.caption.text != "", timeout=10)
        slides.append(slide(screen))
        if index == 0:
            yield from drawn()
            result["screenshot"] = screenshot(out_dir, "photos-live.png")
            yield from wait_settled([screen.ids.next])
        position = screen.ids.position.text
        yield from tap(screen.ids.next)
        yield from wait_until(
            lambda p=position: screen.ids.position.text != p,
            timeout=10,
        )
    result["after_last"] = slide(screen)  # the big arrow leads from the last back to the first
    result["slides"] = slides
    result["cached"] = cached_files(core)
    say("SHOWN", {"slides": slides, "cached_after_s": result["cached_after_s"]})


def main(argv: list[str]) -> int:
    data_dir, out_dir = Path(argv[0]), Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"scenario": "photos-live"}
    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    core = KioskCore(KioskSettings(data_dir=data_dir))
    app = LiensApp(core, fullscreen=False)
    runner = Runner(app, photos_steps(app, core, out_dir, commands, result), result)
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
    say("RESULT", json.loads(json.dumps(result, default=str)))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
