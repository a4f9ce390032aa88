"""``liens serve | demo | kiosk | admin …``.

Imports are lazy: a tablet installs only the ``kiosk`` extra, so ``liens kiosk`` must not import
the backend, and the server must not import Kivy.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Migrations run at every start; their step-by-step log is noise for a person.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liens", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("LIENS_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the backend (and its own Mosquitto unless LIENS_MQTT_URL is set)"
    )
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)

    demo = sub.add_parser("demo", help="the whole system on this machine, with a demo home")
    demo.add_argument(
        "--data-dir", type=Path, default=None, help="default: a fresh temporary folder"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--mqtt-port", type=int, default=1884)
    demo.add_argument("--headless", action="store_true", help="run the kiosk without a window")
    demo.add_argument("--no-kiosk", action="store_true", help="do not start a kiosk")
    demo.add_argument("--windowed", action="store_true", help="kiosk in a window, not full screen")

    kiosk = sub.add_parser("kiosk", help="run the tablet app")
    kiosk.add_argument("--headless", action="store_true", help="no window; one JSON line per event")
    kiosk.add_argument("--data-dir", type=Path, default=None)
    kiosk.add_argument("--server", default=None, help="server address (enrolment)")
    kiosk.add_argument("--code", default=None, help="enrolment code (headless enrolment)")
    kiosk.add_argument("--windowed", action="store_true", help="not full screen (development)")
    kiosk.add_argument(
        "--media",
        choices=("synthetic", "devices", "auto"),
        default="auto",
        help="call media: test pattern and tone, camera and microphone, or devices when present",
    )
    kiosk.add_argument(
        "--answer",
        choices=("manual", "auto"),
        default="manual",
        help="headless: 'auto' answers every allowed incoming call at once",
    )

    from liens import admin

    admin.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "serve":
        from liens.server import serve

        return serve(host=args.host, port=args.port)
    if args.command == "demo":
        from liens.demo import run_demo

        return run_demo(args)
    if args.command == "kiosk":
        return _kiosk(args)
    if args.command == "admin":
        from liens import admin

        return admin.run(args)
    return 2


def _kiosk(args: argparse.Namespace) -> int:
    from kiosk.settings import KioskSettings

    settings = KioskSettings()
    if args.data_dir is not None:
        settings.data_dir = args.data_dir
    if args.server:
        settings.server_url = args.server
    if args.headless:
        from kiosk import headless

        return headless.run(settings, code=args.code, media=args.media, answer=args.answer)
    # Our root handler (``_configure_logging``) already prints every record; in its default
    # mode Kivy adds its own handlers to the root logger too, and each line came out twice.
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    from kiosk.core import KioskCore
    from screens import configure_window

    configure_window(fullscreen=not args.windowed)
    from screens.app import run

    core = KioskCore(settings, media=args.media)
    run(core, fullscreen=not args.windowed)
    return 0


def default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
