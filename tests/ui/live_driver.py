"""The real tablet app over a real ``KioskCore``, driven step by step by a test over stdin/stdout.

Launched by ``tests/ui/test_live.py`` as ``python -m tests.ui.live_driver DATA_DIR OUT_DIR``
under Xvfb, on a kiosk data dir that is already enrolled with a running backend: it is what
``liens kiosk --windowed`` runs, plus a scenario on the Kivy clock. The conversation, one line
each way at a time (``NAME:{json}`` from here, a bare word from the test):

1. ``READY:{"tiles": [...]}`` once the home shows at least one tile; the test changes the
   backend (approves a contact) and answers ``GO``.
2. ``TAPPED:{"approval_id": ..., "appeared_after_s": ...}`` once a new tile has appeared and
   been tapped with a real touch; the test waits for the event in the backend and answers
   ``STOP``.
3. ``RESULT:{json}`` after the app has stopped (always the last line, also on failure).
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
from tests.ui.driver import Runner, Steps, on_screen, screenshot, tap, wait_until  # noqa: E402

GIVE_UP_SECONDS = 45


def say(kind: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(f"{kind}:{json.dumps(payload)}\n")
    sys.stdout.flush()


def read_commands(commands: queue.Queue[str]) -> None:
    """Stdin lines into a queue: a blocking read must never run on Kivy's thread."""
    for line in sys.stdin:
        commands.put(line.strip())
    commands.put("EOF")


def wait_for_command(commands: queue.Queue[str], expected: str, timeout: float) -> Steps:
    waited = 0.0
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            if waited > timeout:
                raise TimeoutError(f"no {expected} from the test in {timeout} s") from None
            yield 0.05
            waited += 0.05
            continue
        if command == expected:
            return
        raise RuntimeError(f"expected {expected} from the test, got {command!r}")


def tile_summary(app: LiensApp) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "approval_id": t.approval_id,
            "size": [round(t.width), round(t.height)],
            "x": round(t.to_window(t.x, t.y)[0]),
            "right": round(t.to_window(t.right, t.y)[0]),
            "picture": round(min(t.ids.picture.size)),
        }
        for t in app.home_screen.tiles()
    ]


def live_steps(
    app: LiensApp, out_dir: Path, commands: queue.Queue[str], result: dict[str, Any]
) -> Steps:
    try:
        yield from wait_until(lambda: len(app.home_screen.tiles()) >= 1, timeout=15)
    except TimeoutError:
        core = app.core
        raise TimeoutError(
            f"no tile: screen={app.manager.current} state={core.connection_state} "
            f"config={'yes' if core.config else 'no'} sections={app.home_screen.sections!r}"
        ) from None
    yield 0.4  # let the tiles be laid out
    before = {t.approval_id for t in app.home_screen.tiles()}
    result["before"] = tile_summary(app)
    result["screenshot_before"] = screenshot(out_dir, "home-live-before.png")
    say("READY", {"tiles": result["before"]})

    yield from wait_for_command(commands, "GO", timeout=15)
    signalled = time.monotonic()
    yield from wait_until(
        lambda: any(t.approval_id not in before for t in app.home_screen.tiles()), timeout=10
    )
    result["appeared_after_s"] = round(time.monotonic() - signalled, 3)
    yield 0.4  # the tiles' final size, as a finger would find them
    new_tile = next(t for t in app.home_screen.tiles() if t.approval_id not in before)
    result["after"] = tile_summary(app)
    result["all_tiles_on_screen"] = all(on_screen(t) for t in app.home_screen.tiles())
    result["screenshot"] = screenshot(out_dir, "home-live.png")
    yield from tap(new_tile)
    result["recorded"] = [list(r) for r in app.recorded]
    say(
        "TAPPED",
        {"approval_id": new_tile.approval_id, "appeared_after_s": result["appeared_after_s"]},
    )

    yield from wait_for_command(commands, "STOP", timeout=15)


def main(argv: list[str]) -> int:
    data_dir, out_dir = Path(argv[0]), Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"scenario": "live"}
    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    core = KioskCore(KioskSettings(data_dir=data_dir))
    app = LiensApp(core, fullscreen=False)
    runner = Runner(app, live_steps(app, out_dir, commands, result), result)
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
    say("RESULT", result)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
