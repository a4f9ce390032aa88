"""``liens demo``: the whole system on one machine, with a demo home.

Its own Mosquitto 2 + SQLite in a fresh folder, a seeded home (2 seniors, 1 youth, 4 contacts, one
tablet enrolled for the two seniors), the backend on http://127.0.0.1:8000, and the kiosk (a
window, or ``--headless``). Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from backend.app import create_app
from backend.runtime import Backend
from backend.services import directory
from backend.services import tablets as tablet_service
from backend.settings import Settings

log = logging.getLogger(__name__)

DEMO_BY = "demo"
DEMO_STAFF_EMAIL = "equipe@demo.liens.local"
DEMO_STAFF_PASSWORD = "demo-liens-2026"  # noqa: S105 - printed by the demo, never used elsewhere


def seed(backend: Backend) -> dict[str, Any]:
    """Create the demo home; returns what the demo prints."""
    with backend.db.session() as s:
        home = directory.add_home(session=s, name="Résidence Les Tilleuls", by=DEMO_BY)

        def resident(first: str, last: str, kind: str) -> str:
            r = directory.add_resident(
                session=s, home_id=home.id, first_name=first, last_name=last, kind=kind, by=DEMO_BY
            )
            return r.id

        marcel = resident("Marcel", "Dupuis", "senior")
        odette = resident("Odette", "Lemoine", "senior")
        lea = resident("Léa", "Martin", "youth")

        contacts = {}
        for name, relation in [
            ("Julie", "fille"),
            ("Thomas", "petit-fils"),
            ("Claire", "nièce"),
            ("Karim", "grand frère"),
        ]:
            contacts[name] = directory.add_contact(
                session=s, home_id=home.id, display_name=name, relation=relation, by=DEMO_BY
            )
        for resident_id, name in [
            (marcel, "Julie"),
            (marcel, "Thomas"),
            (odette, "Claire"),
            (lea, "Karim"),
        ]:
            directory.approve(
                session=s, resident_id=resident_id, contact_id=contacts[name].id, by=DEMO_BY
            )
        from backend.auth import accounts

        # A staff account for the dashboard (demo only: the password is printed below).
        accounts.add_staff(
            session=s,
            email=DEMO_STAFF_EMAIL,
            name="Équipe de démonstration",
            password=DEMO_STAFF_PASSWORD,
            role="admin",
            home_ids=[home.id],
            by=DEMO_BY,
        )
        tablet = tablet_service.add_tablet(
            session=s,
            home_id=home.id,
            name="Salon du 1er étage",
            resident_ids=[marcel, odette],
            by=DEMO_BY,
        )
        code = tablet_service.issue_code(
            session=s,
            tablet_id=tablet.id,
            secret_key=backend.settings.secret_key,
            ttl=timedelta(hours=1),
            by=DEMO_BY,
        )
        links = {
            f"{c.display_name} ({c.relation})": directory.personal_link(
                backend.settings.public_url, c
            )
            for c in contacts.values()
        }
        return {
            "home": home.id,
            "tablet": tablet.id,
            "code": code.code,
            "links": links,
            "residents": {"Marcel": marcel, "Odette": odette, "Léa": lea},
            "contacts": {n: c.id for n, c in contacts.items()},
        }


def run_demo(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir or Path(tempfile.mkdtemp(prefix="liens-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{args.port}"
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'liens.db'}",
        public_url=base_url,
        port=args.port,
        embedded_mqtt_port=args.mqtt_port,
        mqtt_url="",
    )
    backend = Backend(settings)
    try:
        backend.start()
    except Exception as exc:  # the broker's port is taken, the data folder is not writable…
        backend.stop()
        sys.stderr.write(
            f"Liens could not start: {exc}\n"
            "Is another Liens demo running? Stop it, or pick other ports with "
            "--port and --mqtt-port.\n"
        )
        return 1
    server = uvicorn.Server(
        uvicorn.Config(create_app(backend), host="127.0.0.1", port=args.port, log_level="warning")
    )
    server_thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    server_thread.start()
    while not server.started and server_thread.is_alive():
        time.sleep(0.05)
    if not server_thread.is_alive():
        backend.stop()
        sys.stderr.write(f"The web server could not start on port {args.port}.\n")
        return 1

    fresh = not (data_dir / "demo-seeded").exists()
    info = seed(backend) if fresh else None
    (data_dir / "demo-seeded").touch()
    kiosk_dir = data_dir / "kiosk"
    if info is not None:
        from kiosk.enrolment import enrol
        from kiosk.settings import KioskSettings

        # Enrol the demo tablet as staff would, with its one-time code, over HTTP; only the
        # kiosk process connects with the credentials.
        kiosk_settings = KioskSettings(data_dir=kiosk_dir, server_url=base_url)
        kiosk_settings.save_credentials(
            enrol(base_url, info["code"], app_version=kiosk_settings.app_version)
        )

    kiosk_proc: subprocess.Popen[bytes] | None = None
    kiosk_log = data_dir / "kiosk.log"
    if not args.no_kiosk:
        cmd = [sys.executable, "-m", "liens", "kiosk", "--data-dir", str(kiosk_dir)]
        if args.headless:
            cmd.append("--headless")
        elif args.windowed:
            cmd.append("--windowed")
        # The kiosk's own log (Kivy's start-up chatter, its harmless tracebacks about a missing
        # clipboard tool or multitouch library) goes to a file, so the banner stays readable.
        with kiosk_log.open("ab") as log:
            kiosk_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    _print_banner(
        base_url,
        data_dir,
        info,
        mqtt_port=backend.mqtt_port,
        http_port=args.port,
        kiosk_log=kiosk_log if kiosk_proc is not None else None,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if kiosk_proc is not None and kiosk_proc.poll() is not None:
                _report_kiosk_exit(kiosk_proc.returncode, kiosk_log)
                kiosk_proc = None
    finally:
        sys.stderr.write("\nStopping Liens demo…\n")
        if kiosk_proc is not None and kiosk_proc.poll() is None:
            kiosk_proc.terminate()
            try:
                kiosk_proc.wait(10)
            except subprocess.TimeoutExpired:
                kiosk_proc.kill()
        server.should_exit = True
        server_thread.join(10)
        backend.stop()
    return 0


def _report_kiosk_exit(code: int, log: Path) -> None:
    """The kiosk window was closed or crashed: say so, with the end of its log."""
    tail = log.read_text(errors="replace").splitlines()[-15:]
    sys.stderr.write(
        f"\nThe kiosk stopped (exit code {code}); the backend keeps running. "
        f"End of {log}:\n" + "\n".join("  " + line for line in tail) + "\n"
    )


def _print_banner(
    base_url: str,
    data_dir: Path,
    info: dict[str, Any] | None,
    *,
    mqtt_port: int,
    http_port: int,
    kiosk_log: Path | None = None,
) -> None:
    lines = [
        "",
        "Liens demo is running.",
        f"  Staff dashboard:  {base_url}/staff/  ({DEMO_STAFF_EMAIL} / {DEMO_STAFF_PASSWORD})",
        f"  API docs:         {base_url}/api/docs",
        f"  Data folder:      {data_dir}",
    ]
    if kiosk_log is not None:
        lines.append(f"  Tablet's log:     {kiosk_log}")
    if info is not None:
        lines.append("  Relatives' personal links:")
        lines += [f"    {who:<22} {url}" for who, url in info["links"].items()]
        liens = Path(sys.executable).parent / "liens"
        env = f"LIENS_DATA_DIR={data_dir} LIENS_EMBEDDED_MQTT_PORT={mqtt_port}"
        env += f" LIENS_PUBLIC_URL={base_url}"
        lines += [
            "  Try it: approve Claire for Marcel and watch the tablet:",
            f"    {env} {liens} admin approve "
            f"--resident {info['residents']['Marcel']} --contact {info['contacts']['Claire']}",
        ]
    lines += ["Press Ctrl-C to stop.", ""]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
