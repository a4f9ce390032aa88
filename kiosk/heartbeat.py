"""The tablet's heartbeat: battery, free storage and app version, at start and every N minutes.

Sent as a ``heartbeat`` event through the durable outbox like any usage event
(``KioskCore.record``), so the staff's fleet page (``/staff/tablets``) can say "battery low" or
"storage almost full" before a resident finds a dead tablet. Readings that cannot be made here
(no battery on a desktop, Android's own APIs) are ``None``, never a guess.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEARTBEAT_EVENT = "heartbeat"
DEFAULT_INTERVAL_S = 15 * 60
POWER_SUPPLY = Path("/sys/class/power_supply")
# ``status`` values of the Linux power-supply class (Documentation/ABI/testing/sysfs-class-power).
CHARGING = {"Charging": True, "Full": True, "Discharging": False, "Not charging": False}


@dataclass(frozen=True)
class Readings:
    battery_percent: int | None
    charging: bool | None
    free_storage_mb: int | None
    app_version: str

    def as_event(self) -> dict[str, Any]:
        return {
            "battery_percent": self.battery_percent,
            "charging": self.charging,
            "free_storage_mb": self.free_storage_mb,
            "app_version": self.app_version,
        }


def read_battery(root: Path = POWER_SUPPLY) -> tuple[int | None, bool | None]:
    """(percent, charging) of the first battery under ``root``; (None, None) without one."""
    try:
        supplies = sorted(root.iterdir())
    except OSError:
        return None, None
    for supply in supplies:
        try:
            kind = (supply / "type").read_text().strip()
        except OSError:
            kind = ""
        capacity_file = supply / "capacity"
        if kind not in ("", "Battery") or not capacity_file.exists():
            continue
        try:
            percent = max(0, min(100, int(capacity_file.read_text().strip())))
        except (OSError, ValueError):
            continue
        try:
            status = (supply / "status").read_text().strip()
        except OSError:
            status = ""
        return percent, CHARGING.get(status)
    return None, None


def free_storage_mb(path: Path) -> int | None:
    """Free space for this user where the tablet keeps its data, in MB (None if unknown)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(shutil.disk_usage(probe).free // (1024 * 1024))
    except OSError:
        return None


def read(data_dir: Path, app_version: str, power_supply: Path = POWER_SUPPLY) -> Readings:
    percent, charging = read_battery(power_supply)
    return Readings(
        battery_percent=percent,
        charging=charging,
        free_storage_mb=free_storage_mb(data_dir),
        app_version=app_version,
    )


def interval_from_env() -> float:
    """``LIENS_KIOSK_HEARTBEAT_S`` (seconds, at least 10) or 15 minutes."""
    try:
        return max(10.0, float(os.environ.get("LIENS_KIOSK_HEARTBEAT_S", DEFAULT_INTERVAL_S)))
    except ValueError:
        return float(DEFAULT_INTERVAL_S)


class Heartbeat:
    """Records a ``heartbeat`` event at :meth:`start`, then every ``interval_s``, in a thread."""

    def __init__(
        self,
        record: Callable[[str, dict[str, Any]], object],
        readings: Callable[[], Readings],
        interval_s: float | None = None,
    ) -> None:
        self._record = record
        self._readings = readings
        self.interval_s = interval_s if interval_s is not None else interval_from_env()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="liens-heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def beat(self) -> None:
        """One heartbeat now (also what the thread does)."""
        self._record(HEARTBEAT_EVENT, self._readings().as_event())

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.beat()
            except Exception:
                # Not enrolled any more, a full disk...: the next beat tries again.
                log.warning("heartbeat not recorded", exc_info=True)
            stop.wait(self.interval_s)
