"""The staff's way out of the kiosk: corner gesture -> staff PIN -> staff screen.

The app creates one ``StaffFlow`` (``screens.app``); it owns the two staff screens, the corner
gesture (``screens.lockdown.CornerHold``), the brightness dim and the tablet's preferences, and
is the only part of the staff screens that talks to the core. The staff screens speak the
tablet's language; when staff go back, the residents' screens get their language back.
"""

from __future__ import annotations

import glob
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.graphics import Color, Rectangle
from kivy.uix.widget import Widget

from kiosk import i18n
from kiosk.i18n import _
from kiosk.settings import TabletPreferences
from screens import lockdown
from screens.staff import pin, staff
from screens.staff.access import StaffAccess, match_pin, staff_pins
from screens.staff.hearing import HearingFlow

log = logging.getLogger(__name__)

KV_FILES = (pin.KV_FILE, staff.KV_FILE)
STAFF_SCREENS = ("staff_pin", "staff")
IDLE_SECONDS = 120.0  # a staff screen left open goes back to the residents by itself
SAVE_DELAY = 0.6  # sliders: store the value once the finger settles
MIN_BRIGHTNESS = 0.2
MAX_DIM = 0.75  # the overlay never makes the screen black


class BrightnessDim(Widget):
    """A see-through dark layer over the whole window; touches pass through it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.canvas:
            self._color = Color(0, 0, 0, 0)
            # No size while see-through: a software renderer (Mesa's llvmpipe) would still
            # blend the whole window at every frame.
            self._rect = Rectangle(pos=(0, 0), size=(0, 0))
        Window.bind(size=self._resize)

    def _resize(self, *_args: Any) -> None:
        self._rect.size = Window.size if self._color.a > 0 else (0, 0)

    def set_brightness(self, brightness: float) -> None:
        level = min(1.0, max(MIN_BRIGHTNESS, brightness))
        self._color.a = (1.0 - level) / (1.0 - MIN_BRIGHTNESS) * MAX_DIM
        self._resize()


def set_backlight(brightness: float) -> bool:
    """Set the panel's backlight through sysfs when this user may; True when it was set."""
    for device in sorted(glob.glob("/sys/class/backlight/*")):
        path = Path(device)
        try:
            maximum = int((path / "max_brightness").read_text().strip())
            level = max(1, round(maximum * min(1.0, max(MIN_BRIGHTNESS, brightness))))
            (path / "brightness").write_text(str(level))
        except (OSError, ValueError):
            continue
        return True
    return False


class StaffFlow:
    """Adds the staff screens to the app's manager and answers their events."""

    def __init__(self, app: Any, manager: Any) -> None:
        self.app = app
        self.core = app.core
        self.manager = manager
        self.access = StaffAccess()
        self.left_by_staff = False
        self._return_to = "home"
        self._resident_language: str | None = None
        self._idle_event: Any = None
        preferences = getattr(self.core, "preferences", None)
        self.preferences: TabletPreferences = (
            preferences if isinstance(preferences, TabletPreferences) else TabletPreferences()
        )
        self._save_trigger = Clock.create_trigger(lambda _dt: self._save(), SAVE_DELAY)

        self.pin_screen = pin.StaffPinScreen(name="staff_pin")
        self.pin_screen.bind(
            on_pin_entered=self._on_pin_entered, on_back_requested=lambda _s: self.close()
        )
        self.staff_screen = staff.StaffScreen(name="staff")
        self.staff_screen.bind(
            on_back_requested=lambda _s: self.close(),
            on_language_chosen=self._on_language_chosen,
            on_volume_chosen=self._on_volume_chosen,
            on_brightness_chosen=self._on_brightness_chosen,
            on_reenrol_confirmed=lambda _s: self._reenrol(),
            on_leave_requested=lambda _s: self._leave(),
        )
        manager.add_widget(self.pin_screen)
        manager.add_widget(self.staff_screen)
        # The residents' hearing (staff panel) and the in-call volume buttons (docs/audio.md).
        self.hearing = HearingFlow(app, self.staff_screen, self.core)

        self.dim = BrightnessDim()
        self._apply_brightness(self.preferences.brightness)
        # Over everything: added once the app's root is in the window (after build()).
        Clock.schedule_once(lambda _dt: Window.add_widget(self.dim), 0)

        self.gesture = lockdown.CornerHold()
        self.gesture.bind(on_hold=lambda _g: self.open())
        self.gesture.install(Window)
        Window.bind(on_touch_down=self._on_any_touch)
        # Kivy's own settings panel (F1, Android's menu key) would be a way out.
        app.open_settings = lambda *_args, **_kwargs: False
        app.bind(language=lambda *_args: self._refresh_texts())

    # --- opening and closing ------------------------------------------------------------------

    @property
    def shown(self) -> bool:
        return self.manager.current in STAFF_SCREENS

    def open(self) -> None:
        """The staff gesture was made: ask for a staff PIN (none before enrolment)."""
        if self.shown:
            return
        self._return_to = self.manager.current
        self._resident_language = self.app.language
        self.app.language = i18n.normalise_language(self.preferences.language)
        self.pin_screen.reset()
        if getattr(self.core, "needs_enrolment", False):
            # Nothing of a resident is on a tablet waiting for enrolment, and no staff PIN is
            # known yet: the staff screen opens at once.
            self._show_staff_screen()
            return
        if not staff_pins(self._config()):
            self.pin_screen.message = _(
                "No staff PIN is known on this tablet yet. Set your PIN on the staff dashboard."
            )
        self._show_locked_message()
        self.manager.current = "staff_pin"
        self._touch_idle()

    def close(self) -> None:
        """Back to where the residents were, in their language."""
        if not self.shown:
            return
        self._cancel_idle()
        self.staff_screen.confirming_reenrol = False
        self.staff_screen.showing_hearing = False
        target = self._return_to if self._return_to in self.manager.screen_names else "home"
        if target in STAFF_SCREENS:
            target = "home"
        if self._resident_language is not None:
            self.app.language = self._resident_language
        self.manager.current = target

    def _config(self) -> dict[str, Any] | None:
        config = getattr(self.app, "config_data", None) or getattr(self.core, "config", None)
        return config if isinstance(config, dict) else None

    # --- PIN ----------------------------------------------------------------------------------

    def _show_locked_message(self) -> bool:
        seconds = self.access.locked_for()
        if seconds <= 0:
            return False
        minutes = max(1, round(seconds / 60))
        self.pin_screen.is_error = True
        self.pin_screen.message = (
            _("Too many wrong PINs. Try again in a minute.")
            if minutes == 1
            else _("Too many wrong PINs. Try again in {count} minutes.").format(count=minutes)
        )
        return True

    def _on_pin_entered(self, screen: Any, entered: str) -> None:
        self._touch_idle()
        if self._show_locked_message():
            return
        entries = staff_pins(self._config())
        screen.checking = True
        screen.is_error = False
        screen.message = _("Checking…")

        def work() -> None:
            matched = match_pin(entered, entries)
            Clock.schedule_once(lambda _dt: self._pin_checked(matched), 0)

        threading.Thread(target=work, name="liens-staff-pin", daemon=True).start()

    def _pin_checked(self, matched: dict[str, Any] | None) -> None:
        screen = self.pin_screen
        screen.checking = False
        if not self.shown:
            return
        if matched is not None:
            self.access.succeeded()
            self._record("staff_screen_opened", {"staff_id": str(matched.get("staff_id", ""))})
            self._show_staff_screen()
            return
        self.access.failed()
        if self._show_locked_message():
            return
        screen.is_error = True
        left = self.access.tries_left
        screen.message = (
            _("This PIN is not right. One try left.")
            if left == 1
            else _("This PIN is not right. {count} tries left.").format(count=left)
        )

    # --- the staff screen ---------------------------------------------------------------------

    def _show_staff_screen(self) -> None:
        screen = self.staff_screen
        core = self.core
        screen.language_code = i18n.normalise_language(self.preferences.language)
        screen.volume = self.preferences.volume
        screen.brightness = self.preferences.brightness
        screen.app_version = str(getattr(core, "app_version", "") or _version())
        screen.connection_state = str(getattr(core, "connection_state", "") or "offline")
        screen.server_url = str(getattr(core, "default_server_url", "") or "")
        tablet = ((self._config() or {}).get("tablet") or {}).get("name")
        screen.tablet_name = str(getattr(core, "tablet_name", "") or tablet or "")
        devices = getattr(core, "media_devices", None)
        found = devices() if callable(devices) else {}
        screen.microphone = found.get("microphone")
        screen.speaker = found.get("speaker")
        screen.confirming_reenrol = False
        self.hearing.show(self._config())
        screen.refresh_texts()
        self.manager.current = "staff"
        self._touch_idle()

    def _refresh_texts(self) -> None:
        self.staff_screen.refresh_texts()

    def _on_language_chosen(self, _screen: Any, code: str) -> None:
        self.preferences = replace(self.preferences, language=i18n.normalise_language(code))
        self.app.language = self.preferences.language  # the staff screen follows at once
        self._save()

    def _on_volume_chosen(self, _screen: Any, value: float) -> None:
        self.preferences = replace(self.preferences, volume=value)
        self.hearing.tablet_volume_changed(value)
        self._save_trigger()

    def _on_brightness_chosen(self, _screen: Any, value: float) -> None:
        self.preferences = replace(self.preferences, brightness=max(MIN_BRIGHTNESS, value))
        self._apply_brightness(self.preferences.brightness)
        self._save_trigger()

    def _apply_brightness(self, brightness: float) -> None:
        # The panel's own backlight when the kiosk user may set it (saves power); otherwise a
        # dark layer over the picture.
        if set_backlight(brightness):
            self.dim.set_brightness(1.0)
        else:
            self.dim.set_brightness(brightness)

    def _save(self) -> None:
        save = getattr(self.core, "save_preferences", None)
        if callable(save):
            try:
                save(self.preferences)
            except Exception:
                log.exception("could not save the tablet's preferences")
        else:
            self.core.preferences = self.preferences

    def _reenrol(self) -> None:
        self._cancel_idle()
        forget = getattr(self.core, "forget_enrolment", None)
        if callable(forget):
            try:
                forget()
            except Exception:
                log.exception("could not forget the enrolment")
        self.app.config_data = None
        home = getattr(self.app, "home_screen", None)
        if home is not None:
            home.has_config = False
            home.sections = []
        # The enrolment screen is for staff: it stays in the tablet's language.
        self._resident_language = None
        self.manager.current = "enrolment"

    def _leave(self) -> None:
        self._cancel_idle()
        self._record("kiosk_left", {})
        self.left_by_staff = True
        self.app.stop()

    def _record(self, event_type: str, data: dict[str, Any]) -> None:
        if getattr(self.core, "needs_enrolment", False):
            return
        try:
            self.core.record(event_type, data)
        except Exception:
            log.exception("could not record %s", event_type)

    # --- leaving a staff screen open ----------------------------------------------------------

    def _on_any_touch(self, *_args: Any) -> bool:
        if self.shown:
            self._touch_idle()
        return False

    def _touch_idle(self) -> None:
        self._cancel_idle()
        self._idle_event = Clock.schedule_once(lambda _dt: self.close(), IDLE_SECONDS)

    def _cancel_idle(self) -> None:
        if self._idle_event is not None:
            self._idle_event.cancel()
            self._idle_event = None


def _version() -> str:
    from kiosk import __version__

    return str(__version__)
