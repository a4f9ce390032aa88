"""The activities on a resident's home, and what happens when one is opened and left.

``ActivityHost`` is created by the app once. It adds a row of tiles to the home's
``activities_slot`` at once, and each activity's screen (with its kv file) to the screen manager
after the home's first frame (``build_screens``), or when the activity is first opened.
The row follows the home: when the home shows one resident's section, the row shows the
activities for that resident's audience ("youth" for a child, "senior" otherwise); when nobody
is chosen, nothing.

The host is the only part of the activities that talks to the core: ``record`` for
``activity_started`` / ``activity_stopped`` / ``photo_heart``, and the photo cache
(``core.photos``, a :class:`kiosk.photos.PhotoCache`, when the core has one). An activity left
any way (its "Retour", an incoming call, the picker) is recorded as stopped, with its duration
and its own figures.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from kivy.lang import Builder

from kiosk import i18n, viewmodel
from screens.activities import Activity, discover, for_audience, tiles
from screens.activities.base import (
    CHIME,
    KV_FILE,
    ActivityContext,
    ActivityRow,
    ActivityScreen,
)

log = logging.getLogger(__name__)


def load_kv_files(activities: list[Activity]) -> None:
    """Each kv file once per process, however many apps are built (as ``screens.app`` does)."""
    loaded = {os.path.abspath(f) for f in Builder.files}
    for path in [KV_FILE, *(a.kv_file for a in activities if a.kv_file is not None)]:
        if str(path.resolve()) not in loaded:
            Builder.load_file(str(path))


class ActivityHost:
    """Adds the activities to ``manager`` and their tiles to ``home_screen``'s slot."""

    def __init__(self, app: Any, manager: Any, home_screen: Any) -> None:
        self.app = app
        self.manager = manager
        self.home_screen = home_screen
        self.activities = discover()
        load_kv_files([])  # the row's; each activity's own with its screen
        # Built after the home's first frame (build_screens), or when first opened.
        self.screens: dict[str, ActivityScreen] = {}
        self.row = ActivityRow()
        self.row.bind(on_activity_chosen=lambda _row, key: self.open(key))
        home_screen.ids.activities_slot.add_widget(self.row)
        self.resident: dict[str, Any] | None = None  # the section the home shows, if only one
        self.active: Activity | None = None
        self.context: ActivityContext | None = None
        self._started = 0.0
        self._sound: Any = None
        home_screen.bind(sections=lambda *_a: self.refresh())
        app.bind(language=lambda *_a: self._on_language())
        manager.bind(current=self._on_current)
        self.refresh()

    # --- the activities' screens ------------------------------------------------------------------

    def screen(self, key: str) -> ActivityScreen:
        """The screen of activity ``key``, built (with its kv file) the first time."""
        screen = self.screens.get(key)
        if screen is None:
            activity = next(a for a in self.activities if a.key == key)
            load_kv_files([activity])
            screen = activity.screen(name=activity.screen_name)
            screen.bind(on_back_requested=lambda _s: self.go_home())
            self.manager.add_widget(screen)
            self.screens[key] = screen
        return screen

    def build_screens(self) -> None:
        """Every activity's screen not built yet (the app calls it after the first frame)."""
        for activity in self.activities:
            self.screen(activity.key)

    # --- the home's row ------------------------------------------------------------------------

    def refresh(self) -> None:
        sections = list(self.home_screen.sections or [])
        self.resident = dict(sections[0]) if len(sections) == 1 else None
        if self.resident is None:
            self.row.tiles = []
            return
        shown = for_audience(self.activities, self.audience())
        self.row.tiles = tiles(shown, i18n._)

    def audience(self) -> str:
        return "youth" if (self.resident or {}).get("kind") == "youth" else "senior"

    def _on_language(self) -> None:
        self.row.tiles = []
        self.refresh()
        for screen in self.screens.values():
            screen.refresh_texts()

    # --- opening and leaving -------------------------------------------------------------------

    def open(self, key: str) -> None:
        activity = next((a for a in self.activities if a.key == key), None)
        if activity is None or self.resident is None or self.active is not None:
            return
        if self.manager.current != "home":
            return  # a second tap while the first one's slide is under way
        if self.audience() not in activity.audiences:
            return
        context = self._context()
        screen = self.screen(key)
        try:
            screen.begin(context)
        except Exception:
            # A resident never sees an error screen: the activity just does not open.
            log.exception("activity %s could not start", key)
            return
        self.active, self.context, self._started = activity, context, time.monotonic()
        self._record("activity_started", {"activity": key, "resident_id": context.resident_id})
        self.manager.current = activity.screen_name

    def go_home(self) -> None:
        if self.active is not None and self.manager.current == self.active.screen_name:
            self.manager.current = "home"

    def _on_current(self, _manager: Any, current: str) -> None:
        active = self.active
        if active is None or current == active.screen_name:
            return
        screen, context = self.screens[active.key], self.context
        self.active, self.context = None, None
        try:
            figures = screen.figures()
            screen.end()
        except Exception:
            log.exception("activity %s did not end cleanly", active.key)
            figures = {}
        data = {
            "activity": active.key,
            "resident_id": context.resident_id if context else "",
            "duration_s": round(time.monotonic() - self._started, 1),
            **figures,
        }
        self._record("activity_stopped", data)

    def _context(self) -> ActivityContext:
        resident = self.resident or {}
        rid = str(resident.get("resident_id", ""))
        config = getattr(self.app, "config_data", None)
        cache = getattr(self.app.core, "photos", None)
        photos: list[dict[str, Any]] = []
        if cache is not None:
            try:
                photos = cache.shown(config, rid)
            except Exception:
                log.exception("photo cache unreadable")

        def mark_seen(photo_id: str) -> None:
            if cache is not None:
                cache.mark_seen(rid, photo_id)

        def send_heart(photo_id: str) -> bool:
            if cache is not None and not cache.mark_hearted(rid, photo_id):
                return False  # once per photo
            self._record("photo_heart", {"photo_id": photo_id, "resident_id": rid})
            return True

        return ActivityContext(
            resident_id=rid,
            resident_name=str(resident.get("name", "")),
            audience=self.audience(),
            language=i18n.get_language(),
            timezone=viewmodel.home_timezone(config),
            photos=photos,
            mark_seen=mark_seen,
            send_heart=send_heart,
            chime=self.chime,
        )

    def _record(self, event_type: str, data: dict[str, Any]) -> None:
        recorded = getattr(self.app, "recorded", None)
        if isinstance(recorded, list):
            recorded.append((event_type, dict(data)))
        try:
            self.app.core.record(event_type, data)
        except Exception:
            log.exception("could not record %s", event_type)

    def chime(self) -> None:
        """The soft bell of a pair found; silence when the tablet has no sound."""
        try:
            if self._sound is None:
                from kivy.core.audio import SoundLoader

                self._sound = SoundLoader.load(str(CHIME)) or False
            if self._sound:
                self._sound.stop()
                self._sound.play()
        except Exception:
            log.warning("no chime", exc_info=True)
            self._sound = False
