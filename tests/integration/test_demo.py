"""``liens demo``, what ``make demo`` runs: the whole system from one command.

The demo runs as a person starts it (its own process, its own Mosquitto, SQLite, seeded home) with
a headless kiosk, whose JSON lines go to the tablet's log in the data folder. The test reads the
banner, opens the pages it prints, runs the approval command it suggests and watches the tablet
show the new contact.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fixtures.mosquitto import free_port
from tests.helpers import poll_until


def _kiosk_contacts(log: Path) -> list[set[tuple[str, str]]]:
    """(resident id, contact name) of every configuration the headless kiosk printed, in order."""
    if not log.exists():
        return []
    seen = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "config":
            seen.append({(c["resident_id"], c["name"]) for c in event["contacts"]})
    return seen


def test_demo_serves_seeds_and_the_tablet_follows_an_approval(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    port, mqtt_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENS_")}
    banner = tmp_path / "banner.txt"
    with banner.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "liens", "demo", "--headless", "--data-dir", str(data)]
            + ["--port", str(port), "--mqtt-port", str(mqtt_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        text = poll_until(
            lambda: "Press Ctrl-C to stop." in banner.read_text() and banner.read_text(),
            60,
            "the demo's banner",
        )
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/staff/" in text
        links = [w for w in text.split() if w.startswith(f"{base}/f/")]
        assert len(links) == 4, text
        assert httpx.get(f"{base}/staff/login").status_code == 200
        assert all(httpx.get(link).status_code == 200 for link in links)

        # The command the banner suggests, as a person would paste it.
        suggested = next(line for line in text.splitlines() if " admin approve " in line)
        command = shlex.split(suggested)
        marcel = command[command.index("--resident") + 1]

        log = data / "kiosk.log"
        first = poll_until(lambda: _kiosk_contacts(log), 60, "the tablet's configuration")
        assert (marcel, "Julie") in first[-1]
        assert (marcel, "Claire") not in first[-1]

        assignments = []
        while "=" in command[0]:
            assignments.append(command.pop(0))
        run_env = env | dict(a.split("=", 1) for a in assignments)
        done = subprocess.run(command, env=run_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "approved"

        poll_until(
            lambda: any((marcel, "Claire") in pairs for pairs in _kiosk_contacts(log)),
            10,
            "Claire on the tablet after her approval",
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, banner.read_text()[-3000:]
    assert "Stopping Liens demo" in banner.read_text()
