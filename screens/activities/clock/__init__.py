"""Day and time: what day, date and time it is, in very large type (seniors)."""

from __future__ import annotations

from pathlib import Path

from screens.activities import Activity, lazy_screen

KV_FILE = Path(__file__).with_name("clock.kv")

ACTIVITY = Activity(
    key="clock",
    name="Day and time",
    icon="calendar-clock",
    audiences=frozenset({"senior"}),
    screen=lazy_screen("screens.activities.clock.clock", "DayAndTimeScreen"),
    kv_file=KV_FILE,
    order=30,
)
