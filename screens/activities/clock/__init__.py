"""Day and time: what day, date and time it is, in very large type (seniors)."""

from __future__ import annotations

from typing import Any

from screens.activities import Activity
from screens.activities.clock.clock import KV_FILE


def _screen(**kwargs: Any) -> Any:
    from screens.activities.clock.clock import DayAndTimeScreen

    return DayAndTimeScreen(**kwargs)


ACTIVITY = Activity(
    key="clock",
    name="Day and time",
    icon="calendar-clock",
    audiences=frozenset({"senior"}),
    screen=_screen,
    kv_file=KV_FILE,
    order=30,
)
