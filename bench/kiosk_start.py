"""Kiosk cold start, idle CPU and memory, against a bare KivyMD app measured in the same run.

    python -m bench.kiosk_start [--idle-seconds 30] [--runs 5] [--profile PATH]

Each app runs in a fresh process under its own Xvfb (1280x800), ``--runs`` times each,
interleaved (bare then kiosk, then kiosk then bare, ...). Measured, per app and run:

- ``start_s``: from just before the process is spawned to the first frame drawn (the window's
  ``on_flip``) that shows the home screen with its six contact tiles, each with its portrait
  (640 px JPEGs, as the photo cache holds them); the bare app: its first frame with its one
  ``MDLabel``; imports, kv loading, image decoding and the GL context are all inside;
- ``idle_cpu_percent``: the process's CPU time (every thread) over ``--idle-seconds`` of idle
  home screen, from ``SETTLE_SECONDS`` after the first frame, as a percentage of one core;
  ``idle_frames_per_s``: frames drawn meanwhile (0 when nothing on screen moves);
- ``idle_loops_per_s``: turns of Kivy's loop meanwhile (each polls input, runs the clock);
- ``rss_mib``: resident memory at the end of the idle period;
- ``press_to_frame_ms`` (kiosk): after the idle period, a real X button press on a tile (XTest,
  as a touchscreen's event): milliseconds until the frame that shows the tile pressed;
- ``marks_s`` (kiosk): seconds from the spawn to the interpreter, Kivy's window, our imports,
  the end of ``build()`` (``on_start``) and the first home frame (``start_s``);
- ``deferred_built_before_idle`` (kiosk): whether the screens built after the first frame (staff,
  "Ask for a contact", the calls: docs/kiosk.md) were all there when the idle measure began.

The kiosk is configured as ``liens kiosk --windowed`` (``screens.configure_window``: its 30 fps
cap); the bare app keeps Kivy's defaults. ``load_average_1min`` (after each run) says how busy
the machine was. Each app is spawned ``XVFB_SETTLE_SECONDS`` after its Xvfb is up: spawned at
once, Xvfb's own start (and the previous app's exit) slowed Kivy's window by up to 0.2 s at
random on 2 cores, for either app.

The kiosk runs over the UI tests' fake core (no network, no call engine): this measures the
app, not the broker. The app's modules are compiled to bytecode first, as ``pip install`` does
on a tablet (:func:`compile_bytecode`). Prints one JSON object: every run, and under
``median`` the medians of each figure and of the ratios kiosk / bare (a single start still moves
with the machine's load); targets: start within 1.5x the bare app, idle CPU under 2 % of a core.
``--profile`` slows every start it profiles: read its figures for where the time goes, not for
the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SETTLE_SECONDS = 5.0  # from the first frame to the start of the idle measure
XVFB_SETTLE_SECONDS = 1.0  # from a new Xvfb's display to the app's spawn


def child(kind: str, spawned_at: float, idle_seconds: float, photos_dir: Path) -> None:
    report: dict[str, Any] = {"kind": kind}
    marks: dict[str, float] = {"python": time.time() - spawned_at}
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config

    if kind == "kiosk":
        # As `liens kiosk --windowed` starts it: 1280x800 and the kiosk's frame rate cap.
        from screens import configure_window

        configure_window(fullscreen=False)
    else:
        Config.set("graphics", "width", "1280")
        Config.set("graphics", "height", "800")
    from kivy.clock import Clock
    from kivy.core.window import Window

    marks["window"] = time.time() - spawned_at
    profiler = _profiler()
    app: Any

    if kind == "bare":
        from kivymd.app import MDApp
        from kivymd.uix.label import MDLabel

        class Bare(MDApp):
            def build(self) -> Any:
                return MDLabel(text="Liens", halign="center")

        app = Bare()

        def ready() -> bool:
            return app.root is not None

    else:
        from screens.app import LiensApp
        from tests.ui.fake_core import SIX_CONTACTS, FakeCore, config

        marks["imports"] = time.time() - spawned_at
        # Every contact has its portrait, as the tablet's photo cache gives them (640 px JPEG).
        portraits = {c["id"]: str(photos_dir / f"{c['id']}.jpg") for c in SIX_CONTACTS}
        core = FakeCore(
            config=config([("r1", "Jeanne", SIX_CONTACTS)]),
            connection_state="online",
            photo_paths=portraits,
        )
        app = LiensApp(core, fullscreen=False)
        app.bind(on_start=lambda *_a: marks.__setitem__("built", time.time() - spawned_at))

        def ready() -> bool:
            if app.manager is None or app.manager.current != "home":
                return False
            tiles = app.home_screen.tiles()
            # The six tiles, each showing its portrait (decoded, on a texture).
            return len(tiles) == 6 and all(
                t.photo and t.ids.photo.texture is not None for t in tiles
            )

    def on_flip(*_args: Any) -> None:
        if "start_s" in report or not ready():
            return
        report["start_s"] = round(time.time() - spawned_at, 3)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(os.environ["LIENS_BENCH_PROFILE"] + f".{kind}")
        # Where the start went: interpreter, Kivy's window, our imports, build(), first frame.
        report["marks_s"] = {k: round(v, 3) for k, v in marks.items()}
        Window.unbind(on_flip=on_flip)
        # Idle means after the start's tail (deferred screens, first textures): 5 s later.
        Clock.schedule_once(lambda _dt: idle_begin(), SETTLE_SECONDS)

    flips = {"n": 0}

    def count_flip(*_args: Any) -> None:
        flips["n"] += 1

    def idle_begin() -> None:
        if kind == "kiosk":
            # What the kiosk builds after its first frame (docs/kiosk.md, "Start-up") must be
            # done before the idle measure starts, or the measure is of that work.
            report["deferred_built_before_idle"] = (
                app._staff_flow is not None
                and app._request_flow is not None
                and len(app._call_screens or {}) == 5
            )
        report["cpu0"] = time.process_time()
        report["wall0"] = time.monotonic()
        report["loops0"] = Clock.frames
        Window.bind(on_flip=count_flip)  # frames drawn while idle: 0 when nothing moves
        Clock.schedule_once(lambda _dt: idle_end(), idle_seconds)

    def idle_end() -> None:
        cpu = time.process_time() - report.pop("cpu0")
        wall = time.monotonic() - report.pop("wall0")
        report["idle_cpu_percent"] = round(100 * cpu / wall, 2)
        report["idle_frames_per_s"] = round(flips["n"] / wall, 2)
        # Turns of Kivy's loop (each polls input and runs the clock), drawn or not.
        report["idle_loops_per_s"] = round((Clock.frames - report.pop("loops0")) / wall, 2)
        report["rss_mib"] = round(_rss_bytes() / 2**20, 1)
        report["clock_events"] = len(Clock.get_events())
        report["maxfps"] = Config.getint("graphics", "maxfps")
        if kind == "kiosk":
            press_after_idle()
        else:
            app.stop()

    def press_after_idle() -> None:
        # A real press (an X server event, as a touchscreen's) on a tile after the idle period:
        # milliseconds until the frame that shows the tile pressed (issue: within 100 ms).
        tile = app.home_screen.tiles()[0]
        x, y = tile.to_window(*tile.center)
        x, y = int(x), int(Window.height - y)  # X counts from the top
        seen: dict[str, float] = {}

        def on_press_flip(*_args: Any) -> None:
            if tile.state == "down" and "frame" not in seen:
                seen["frame"] = time.monotonic()

        def finish() -> None:
            if "pressed" in seen and "frame" in seen:
                report["press_to_frame_ms"] = round(1000 * (seen["frame"] - seen["pressed"]), 1)
            app.stop()

        Window.bind(on_flip=on_press_flip)
        threading.Thread(target=_x_press, args=(x, y, seen), daemon=True).start()
        Clock.schedule_once(lambda _dt: finish(), 3.0)

    Window.bind(on_flip=on_flip)
    Clock.schedule_once(lambda _dt: app.stop(), 120 + idle_seconds)
    app.run()
    sys.stdout.write("BENCH:" + json.dumps(report) + "\n")
    sys.stdout.flush()


def _profiler() -> Any:
    """With LIENS_BENCH_PROFILE=<path>: cProfile from Kivy's window to the first home frame."""
    if not os.environ.get("LIENS_BENCH_PROFILE"):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _x_press(x: int, y: int, seen: dict[str, float]) -> None:
    """Move the X pointer to (x, y), wait for the app to go idle again, press the button."""
    import ctypes

    xlib, xtst = ctypes.CDLL("libX11.so.6"), ctypes.CDLL("libXtst.so.6")
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XFlush.argtypes = [ctypes.c_void_p]
    xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 3 + [ctypes.c_ulong]
    xtst.XTestFakeButtonEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    xtst.XTestFakeButtonEvent.argtypes += [ctypes.c_ulong]
    display = xlib.XOpenDisplay(None)
    if not display:
        return
    xtst.XTestFakeMotionEvent(display, -1, x, y, 0)
    xlib.XFlush(display)
    time.sleep(1.5)  # the motion's wake-up is over: the loop sleeps again
    seen["pressed"] = time.monotonic()
    xtst.XTestFakeButtonEvent(display, 1, 1, 0)
    xlib.XFlush(display)


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _xvfb() -> tuple[subprocess.Popen[bytes], str]:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    return proc, f":{number}"


def write_portraits(folder: Path) -> None:
    """Six 640 px JPEG portraits (the size the backend makes for tablets), one per contact."""
    from PIL import Image, ImageDraw

    from tests.ui.fake_core import SIX_CONTACTS

    folder.mkdir(parents=True, exist_ok=True)
    for n, contact in enumerate(SIX_CONTACTS):
        image = Image.new("RGB", (640, 640), (200 - 20 * n, 170, 120 + 15 * n))
        draw = ImageDraw.Draw(image)
        draw.ellipse((150, 80, 490, 460), fill=(233, 196, 160))
        draw.rectangle((90, 470, 550, 640), fill=(52, 96, 140 + 10 * n))
        image.save(folder / f"{contact['id']}.jpg", quality=85)


def measure(kind: str, idle_seconds: float, kivy_home: Path, photos_dir: Path) -> dict[str, Any]:
    xvfb, display = _xvfb()
    # Xvfb, and the previous app going away, still use the CPU for a moment after the display
    # is ready: on 2 cores that slowed the next start's window by up to 0.2 s at random.
    time.sleep(XVFB_SETTLE_SECONDS)
    env = dict(os.environ)
    env.update(
        DISPLAY=display,
        KIVY_HOME=str(kivy_home),
        KIVY_NO_FILELOG="1",
        KIVY_NO_ARGS="1",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    try:
        spawned_at = time.time()
        cmd = [sys.executable, "-m", "bench.kiosk_start", "--child", kind]
        cmd += ["--spawned-at", repr(spawned_at), "--idle-seconds", str(idle_seconds)]
        cmd += ["--photos", str(photos_dir)]
        out = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180 + idle_seconds
        ).stdout
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=5)
    lines = [line for line in out.splitlines() if line.startswith("BENCH:")]
    return json.loads(lines[-1][len("BENCH:") :]) if lines else {"error": "no result"}


def compile_bytecode() -> None:
    """Compile the app's modules, as ``pip install`` does on a tablet (deploy/kiosk).

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (these machines) would otherwise
    compile every module of ours from source at each start (~50 ms here), while KivyMD's come
    compiled: a cost a tablet does not pay.
    """
    import compileall

    for package in ("kiosk", "screens", "liens", "bench", "tests"):
        compileall.compile_dir(REPO / package, quiet=1)


def _median(values: list[float]) -> float | None:
    import statistics

    return round(statistics.median(values), 3) if values else None


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of what each app measured, and of the kiosk/bare ratios."""

    def values(kind: str, key: str) -> list[float]:
        return [r[kind][key] for r in runs if r[kind].get(key) is not None]

    def ratios(key: str) -> list[float]:
        return [
            r["kiosk"][key] / r["bare_kivymd"][key]
            for r in runs
            if r["kiosk"].get(key) is not None and r["bare_kivymd"].get(key)
        ]

    start_ratios = ratios("start_s")
    keys = ("start_s", "idle_cpu_percent", "idle_loops_per_s", "rss_mib")
    result: dict[str, Any] = {
        kind: {key: _median(values(kind, key)) for key in keys} for kind in ("kiosk", "bare_kivymd")
    }
    result["kiosk"]["press_to_frame_ms"] = _median(values("kiosk", "press_to_frame_ms"))
    result["start_ratio"] = _median(start_ratios)
    result["start_ratio_of_medians"] = (
        round(result["kiosk"]["start_s"] / result["bare_kivymd"]["start_s"], 2)
        if result["kiosk"]["start_s"] and result["bare_kivymd"]["start_s"]
        else None
    )
    result["start_ratio_runs_within_target"] = sum(1 for r in start_ratios if r <= 1.5)
    result["idle_cpu_ratio"] = _median(ratios("idle_cpu_percent"))
    result["rss_ratio"] = _median(ratios("rss_mib"))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=5, help="bare/kiosk pairs, interleaved")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write cProfile stats of each start (window to first frame) to PATH.<kind>",
    )
    parser.add_argument("--child", choices=("bare", "kiosk"))
    parser.add_argument("--spawned-at", type=float, default=0.0)
    parser.add_argument("--photos", type=Path, default=Path("."))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.spawned_at, args.idle_seconds, args.photos)
        return 0
    if args.profile:
        os.environ["LIENS_BENCH_PROFILE"] = str(args.profile)
    compile_bytecode()
    runs: list[dict[str, Any]] = []
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        photos_dir = Path(tmp) / "photos"
        write_portraits(photos_dir)
        # A first, unmeasured start of each warms the disk cache for both alike; the kiosk's
        # lasts long enough to write its tiles' portrait copies (kiosk.tile_photos), as any
        # start after a tablet's first has them.
        for kind in ("bare", "kiosk"):
            measure(kind, 0.5, Path(tmp) / "warm", photos_dir)
        for run in range(args.runs):
            # Alternate which app goes first: a machine getting busier or quieter during the
            # run weighs on both alike.
            order = ("bare", "kiosk") if run % 2 == 0 else ("kiosk", "bare")
            measured = {
                kind: measure(kind, args.idle_seconds, Path(tmp) / f"{kind}-{run}", photos_dir)
                for kind in order
            }
            runs.append({"kiosk": measured["kiosk"], "bare_kivymd": measured["bare"]})
            loads.append(os.getloadavg()[0])
    for run in runs:
        kiosk, bare = run["kiosk"], run["bare_kivymd"]
        if kiosk.get("start_s") and bare.get("start_s"):
            run["start_ratio"] = round(kiosk["start_s"] / bare["start_s"], 2)
    result = {
        "median": summary(runs),
        "targets": {"start_ratio_max": 1.5, "idle_cpu_percent_max": 2.0},
        "runs": runs,
        "idle_seconds": args.idle_seconds,
        "load_average_1min": [round(v, 2) for v in loads],
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
