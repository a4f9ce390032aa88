"""The day-and-time screen: "mardi", "24 novembre 2026", "10 h 30", "le matin", in huge type.

The phrases come from :func:`kiosk.activities.day_and_time` in the resident's language and the
home's time zone; the screen checks the clock every second while it is shown and changes its
texts when the minute changes.

The next scheduled call is not shown: the tablet's config has no scheduled calls yet (only the
contacts' allowed windows, which the home tiles already show as "Demain à 14 h").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kivy.clock import Clock
from kivy.properties import StringProperty

from kiosk.activities import day_and_time
from screens.activities.base import ActivityContext, ActivityScreen

KV_FILE = Path(__file__).with_suffix(".kv")


class DayAndTimeScreen(ActivityScreen):
    """Four big lines; "Retour" at the top."""

    weekday = StringProperty("")
    date = StringProperty("")
    time = StringProperty("")
    part = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        self.language = "fr"
        self.timezone = "Europe/Paris"
        self.now: Callable[[ZoneInfo], datetime] = lambda tz: datetime.now(tz)
        self._ticker: Any = None
        self._minute: tuple[int, int, int] | None = None
        self._opened_at: datetime | None = None
        super().__init__(**kwargs)

    def begin(self, context: ActivityContext) -> None:
        super().begin(context)
        self.language, self.timezone = context.language, context.timezone
        self._minute = None
        self.update()
        self._opened_at = self.now(ZoneInfo(self.timezone))
        if self._ticker is None:
            self._ticker = Clock.schedule_interval(lambda _dt: self.update(), 1.0)

    def end(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def update(self) -> None:
        now = self.now(ZoneInfo(self.timezone))
        minute = (now.toordinal(), now.hour, now.minute)
        if minute == self._minute:
            return
        self._minute = minute
        phrases = day_and_time(now, self.language)
        self.weekday, self.date, self.time, self.part = (
            phrases.weekday.capitalize(),
            phrases.date,
            phrases.time,
            phrases.part.capitalize(),
        )
