"""End to end with a real backend: an approval reaches the running tablet app, a tap reaches back.

The backend (its own Mosquitto + SQLite) runs in this process; the tablet app runs, enrolled
with a real one-time code, in ``tests.ui.live_driver`` under Xvfb. Nothing is faked between a
staff decision and the tile a resident taps, nor between the tap and the stored event.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backend.models import Approval, TabletEvent
from kiosk.core import KioskCore
from kiosk.settings import KioskSettings
from tests.helpers import running_backend
from tests.ui.conftest import REPO, scenario_env

# pytest-timeout's 120 s is a deadline for the whole test: generous, as a loaded machine needs.
pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]

# Each line's deadline: a Kivy app starting (KivyMD, GL, enrolment, MQTT, the first config) on
# a loaded 2-core machine has been seen to need more than 20 s. A deadline, not a measure.
LINE_TIMEOUT = 60


class LiveApp:
    """The driver subprocess and its ``NAME:{json}`` lines (``tests.ui.live_driver`` unless
    another driver ``module`` that speaks the same way is named)."""

    def __init__(
        self,
        data_dir: Path,
        out_dir: Path,
        env: dict[str, str],
        module: str = "tests.ui.live_driver",
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(data_dir), str(out_dir)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(
            target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True
        ).start()
        threading.Thread(
            target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True
        ).start()

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)

    def expect(self, kind: str, timeout: float = LINE_TIMEOUT) -> dict[str, Any]:
        """The payload of the next ``kind:`` line; fails with the driver's result otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.fail(f"no {kind} line from the app in {timeout} s")
            name, _, payload = line.partition(":")
            if name == kind:
                return json.loads(payload)
            if name == "RESULT":
                self.fail(f"the app ended before {kind}: {payload}")

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def fail(self, message: str) -> None:
        self.stop()
        pytest.fail(f"{message}\n--- stderr ---\n{''.join(self.stderr[-40:])}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def test_approval_appears_live_and_its_tap_reaches_the_backend(
    xvfb_display: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    kiosk_dir = tmp_path / "kiosk"
    with running_backend(tmp_path / "server") as b:
        seeded = b.seed(residents=1, contacts=2)
        resident = seeded["residents"][0]
        first, second = seeded["contacts"]
        b.approve(resident, first)
        code = b.issue_code(seeded["tablet"])
        core = KioskCore(KioskSettings(data_dir=kiosk_dir, server_url=b.base_url))
        core.enrol(b.base_url, code)
        core.close()

        app = LiveApp(kiosk_dir, tmp_path, scenario_env(xvfb_display, tmp_path / "kivy-home"))
        try:
            ready = app.expect("READY")
            assert [t["name"] for t in ready["tiles"]] == ["Julie"]

            b.approve(resident, second)
            with b.db.session() as s:
                approval_id = s.scalars(
                    select(Approval.id).where(
                        Approval.resident_id == resident, Approval.contact_id == second
                    )
                ).one()
            app.send("GO")
            tapped = app.expect("TAPPED")
            assert tapped["approval_id"] == approval_id

            # The tap travels: app -> core outbox -> MQTT (QoS 1) -> backend -> TabletEvent.
            deadline = time.monotonic() + 20
            found: list[dict[str, Any]] = []
            while not found and time.monotonic() < deadline:
                with b.db.session() as s:
                    found = [
                        dict(e.data)
                        for e in s.scalars(
                            select(TabletEvent).where(TabletEvent.type == "call_requested")
                        )
                    ]
                if not found:
                    time.sleep(0.1)
            event_seconds = round(time.monotonic() - deadline + 20, 2)
            assert [(e.get("approval_id"), e.get("resident_id")) for e in found] == [
                (approval_id, resident)
            ]

            app.send("STOP")
            result = app.expect("RESULT")
        finally:
            app.stop()
    assert result.get("ok"), result.get("error")
    assert [t["name"] for t in result["after"]] == ["Julie", "Thomas"]
    assert result["all_tiles_on_screen"] is True
    assert (tmp_path / "home-live.png").stat().st_size > 0
    # The tile came from the config pushed at once, not from a periodic refresh (the home's
    # clock ticks each minute): the driver waits at most 10 s for it.
    assert result["appeared_after_s"] < 10
    total = time.monotonic() - started
    print(
        f"live: tile appeared after {result['appeared_after_s']} s, event stored after "
        f"{event_seconds} s, whole test {total:.1f} s"
    )
