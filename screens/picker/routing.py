"""Who is using the tablet, on screen: the picker, a youth's PIN, the home of one resident.

``WhoIsHere`` owns a :class:`kiosk.session.Session` and the picker and PIN screens (built when
first shown, or after the home's first frame: ``build_screens``). The app
tells it about configurations (:meth:`update`), the clock (:meth:`tick`) and the end of a call
(:meth:`show_start`); it decides which resident's home the home screen shows, so no child sees
another's contacts, and takes the tablet back to the picker after ``kiosk.idle_return_s`` (2
minutes by default) without a touch.

PINs are checked against the config's argon2 hash in a worker thread (argon2 takes ~0.1-0.5 s);
the answer hops back with ``Clock.schedule_once``. Nothing here logs a PIN.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kivy.clock import Clock
from kivy.core.window import Window

from kiosk import i18n, session, viewmodel
from screens.components import BIG_TILE_KV_FILE, load_kv_files
from screens.picker.picker import KV_FILE as PICKER_KV_FILE
from screens.picker.picker import PickerScreen
from screens.pin.pin import KV_FILE as PIN_KV_FILE
from screens.pin.pin import PinScreen

log = logging.getLogger(__name__)

# The picker's and the keypad's rules, loaded with the first of them built (a lone senior's
# tablet parses them after its home's first frame: ~13 ms here).
KV_FILES = (BIG_TILE_KV_FILE, PICKER_KV_FILE, PIN_KV_FILE)

# Screens a resident uses on their own home: the inactivity timer runs there (never in a call).
IDLE_SCREENS = frozenset({"home", "pin", "request_contact", "request_sent"})


class WhoIsHere:
    """Routes the tablet between the picker, the PIN keypad and the chosen resident's home."""

    def __init__(self, app: Any, manager: Any, home_screen: Any) -> None:
        self.app = app
        self.manager = manager
        self.home_screen = home_screen
        self.session = session.Session()
        self.config: dict[str, Any] | None = None
        self.photo_paths: dict[str, str] = {}
        self._minute: tuple[int, int] | None = None
        self._auto_opened = False  # the lone resident's home, opened without a choice
        # The picker and the PIN keypad are built when first shown, or after the home's first
        # frame (build_screens): a lone senior's tablet opens on the home and needs neither.
        self._picker_screen: PickerScreen | None = None
        self._pin_screen: PinScreen | None = None
        self._choices: list[dict[str, Any]] = []
        home_screen.bind(
            on_done_requested=lambda _s: self.show_start(),
            connection_state=lambda *_a: self.refresh_home(),
        )
        app.bind(language=lambda *_a: self._refresh_texts())
        Window.bind(on_touch_down=self._on_touch_down)

    # --- the screens ---------------------------------------------------------------------------

    @property
    def picker_screen(self) -> PickerScreen:
        if self._picker_screen is None:
            load_kv_files(KV_FILES)
            screen = PickerScreen(name="picker")
            screen.bind(on_resident_chosen=lambda _s, rid: self.choose(rid))
            screen.choices = self._choices
            self.manager.add_widget(screen)
            self._picker_screen = screen
        return self._picker_screen

    @property
    def pin_screen(self) -> PinScreen:
        if self._pin_screen is None:
            load_kv_files(KV_FILES)
            screen = PinScreen(name="pin")
            screen.bind(
                on_pin_entered=lambda _s, pin: self._check_pin(pin),
                on_back_requested=lambda _s: self.show_start(),
            )
            self.manager.add_widget(screen)
            self._pin_screen = screen
        return self._pin_screen

    def build_screens(self) -> None:
        """The picker and the PIN keypad, if not built yet (the app: after the first frame)."""
        self.picker_screen  # noqa: B018
        self.pin_screen  # noqa: B018

    # --- what the app tells us ---------------------------------------------------------------

    def update(self, config: dict[str, Any] | None, photo_paths: dict[str, str]) -> None:
        """A new configuration (None: the tablet was retired)."""
        self.config = config
        self.photo_paths = photo_paths
        self.session.idle_seconds = viewmodel.idle_return_seconds(config, session.IDLE_SECONDS)
        self._choices = viewmodel.picker_choices(
            config, {**photo_paths, **self._resident_photo_paths()}
        )
        if self._picker_screen is not None:
            self._picker_screen.choices = self._choices
        current = self.session.resident_id
        gone = current is not None and viewmodel.resident_entry(config, current) is None
        # A lone resident's home opened by itself; with a second resident, someone must choose.
        now_shared = current is not None and self._auto_opened and self._shared()
        if gone or now_shared:
            # Their contacts must go from the screen at once.
            self.session.close()
            if self.manager.current in IDLE_SCREENS:
                self.show_start()
        waiting = self._pin_screen.resident_id if self._pin_screen is not None else ""
        if self.manager.current == "pin" and viewmodel.resident_entry(config, waiting) is None:
            self.show_start()
        elif (
            self.session.resident_id is None
            and self.manager.current in ("home", "picker")
            and self._entries()
        ):
            # Nobody chosen yet and the residents are now known (the app started before its
            # first configuration): the picker, or the lone resident's home, as at start.
            self.show_start()
            return
        self.refresh_home()

    def tick(self) -> None:
        """Every second: the minute's tile states, and the return to the picker when idle."""
        now = datetime.now(ZoneInfo(viewmodel.home_timezone(self.config)))
        minute = (now.hour, now.minute)
        if minute != self._minute:
            self._minute = minute
            self.refresh_home(now)
        current = self.manager.current
        # Activities count too: a child's photos must not stay up for the next child.
        if current not in IDLE_SCREENS and not current.startswith("activity_"):
            self.session.touch()  # a call or an activity is on: it counts as activity
            return
        if self.session.idle_for() < self.session.idle_seconds:
            return
        if self.session.resident_id is not None or (current == "pin" and self._shared()):
            log.info("no touch for %.0f s: back to the picker", self.session.idle_for())
            self.show_start()

    def after_call(self, was_call: bool) -> None:
        """A call screen is done: the picker after a call, the same home after a refusal."""
        if was_call or self.session.resident_id is None:
            self.show_start()
        else:
            self._show("home")

    def reset_lock(self, resident_id: str | None) -> None:
        """Staff cleared a child's PIN lock-out (the tablet's staff screen or the backend)."""
        self.session.reset_lock(resident_id)
        if self.manager.current == "pin" and resident_id in (None, self.pin_screen.resident_id):
            self.pin_screen.show_result(None)
            self.pin_screen.locked = False

    # --- routing -----------------------------------------------------------------------------

    def show_start(self) -> None:
        """Nobody is using the tablet: the picker, or the lone resident's home or PIN."""
        self.session.close()
        self.session.touch()
        entries = self._entries()
        if not entries:
            self.refresh_home()
            self._show("home")  # "your contacts will appear here soon"
            return
        if session.skips_picker(entries):
            self.choose(str(entries[0]["id"]))
            self._auto_opened = self.session.resident_id is not None
            return
        self.refresh_home()
        self._show("picker")

    def choose(self, resident_id: str) -> None:
        entry = viewmodel.resident_entry(self.config, resident_id)
        if entry is None:
            return
        self.session.touch()
        if session.may_open_without_pin(entry, self._entries()):
            self.open(resident_id)
            return
        self.pin_screen.show(
            resident_id=resident_id,
            name=str(entry.get("first_name", "")),
            can_go_back=self._shared(),
        )
        locked = self.session.locked_seconds(resident_id)
        if locked > 0:
            self.pin_screen.show_result(session.PinCheck("locked", 0, locked))
        elif not entry.get("pin_hash"):
            self.pin_screen.show_result(session.PinCheck("no_pin"))
        self._show("pin")

    def open(self, resident_id: str) -> None:
        entry = viewmodel.resident_entry(self.config, resident_id) or {}
        self._auto_opened = False
        self.session.open(resident_id)
        if entry.get("language"):
            self.app.language = i18n.normalise_language(str(entry["language"]))
        self.refresh_home()
        self._show("home")

    def refresh_home(self, now: datetime | None = None) -> None:
        """Give the home screen the open resident's tiles, states, look and night."""
        home = self.home_screen
        if now is None:
            now = datetime.now(ZoneInfo(viewmodel.home_timezone(self.config)))
        rid = self.session.resident_id
        shown = [rid] if rid is not None else []
        if not self._entries():
            shown = []
        entry = viewmodel.resident_entry(self.config, rid) if rid else None
        home.look = "youth" if entry and session.needs_pin(entry) else "senior"
        home.night_part = viewmodel.night_part(now)
        home.night = viewmodel.is_night(self.config, shown or None, now)
        home.sections = viewmodel.home_sections(
            self.config,
            shown,
            self.photo_paths,
            now=now,
            online=home.connection_state != "offline",
        )

    # --- inside ------------------------------------------------------------------------------

    def _resident_photo_paths(self) -> dict[str, str]:
        """The residents' cached portraits (resident id -> file), when the core has them."""
        read = getattr(getattr(self.app, "core", None), "resident_photo_paths", None)
        if not callable(read):
            return {}
        try:
            return {str(k): str(v) for k, v in dict(read()).items()}
        except Exception:  # noqa: BLE001 - a portrait is never worth losing the picker
            log.exception("resident portraits not read")
            return {}

    def _entries(self) -> list[dict[str, Any]]:
        return [dict(r) for r in (self.config or {}).get("residents", [])]

    def _shared(self) -> bool:
        return len(self._entries()) > 1

    def _show(self, name: str) -> None:
        if name == "picker":
            self.picker_screen  # noqa: B018  (built if it was not yet)
        elif name == "pin":
            self.pin_screen  # noqa: B018
        if self.manager.current != name:
            self.manager.current = name

    def _on_touch_down(self, *_args: Any) -> None:
        self.session.touch()

    def _refresh_texts(self) -> None:
        for screen in (self._picker_screen, self._pin_screen):
            if screen is not None:
                screen.refresh_texts()

    def _check_pin(self, pin: str) -> None:
        resident_id = self.pin_screen.resident_id
        entry = viewmodel.resident_entry(self.config, resident_id) or {}
        pin_hash = str(entry.get("pin_hash") or "")
        locked = self.session.locked_seconds(resident_id)
        if locked > 0 or not pin_hash:
            check = self.session.check_pin(resident_id, pin_hash, pin)
            self.pin_screen.show_result(check)
            return

        def verify() -> None:
            matched = session.verify_pin(pin_hash, pin)
            Clock.schedule_once(lambda _dt: self._pin_checked(resident_id, matched), 0)

        threading.Thread(target=verify, name="liens-pin", daemon=True).start()

    def _pin_checked(self, resident_id: str, matched: bool) -> None:
        if self.manager.current != "pin" or self.pin_screen.resident_id != resident_id:
            return  # the child went back (or the tablet moved on) while argon2 worked
        check = self.session.pin_result(resident_id, matched)
        log.info("PIN for resident %s: %s", resident_id, check.result)
        self.pin_screen.show_result(check)
        if check.result == "ok":
            self.open(resident_id)
