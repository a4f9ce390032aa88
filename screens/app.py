"""The Liens tablet app: a KivyMD app over a ``KioskCore``.

``run(core)`` is what ``liens kiosk`` calls. ``LiensApp(core)`` can also be built and driven
by tests with any object that has the ``KioskCore`` methods used here (``needs_enrolment``,
``config``, ``connection_state``, ``default_server_url``, ``enrol``, ``start``, ``stop``,
``record``, ``set_listener``) and, for calls, ``start_call``, ``answer_call``, ``decline_call``,
``hang_up``, ``call``, ``remote_video`` and ``local_video``.

Calls: a tile tap asks the core to ``start_call``; a refusal (``CallRefused``: ``reason``,
``next_allowed``) becomes a calm sentence with the next slot. The core's ``call`` events pick the
screen: dialling/ringing -> outgoing, incoming -> incoming, connecting/connected -> in call,
ended -> a sentence for a few seconds, then home.

Threads: the core calls the listener from its own threads; the listener only stores what it
got and hops to the main thread with ``Clock.schedule_once``; refreshes are coalesced with a
``Clock.create_trigger``. Enrolment runs in a worker thread for the same reason.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.clock import Clock  # noqa: E402
from kivy.config import Config  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.properties import StringProperty  # noqa: E402
from kivymd.app import MDApp  # noqa: E402
from kivymd.uix.screenmanager import MDScreenManager  # noqa: E402

from kiosk import i18n, viewmodel  # noqa: E402
from kiosk.calls.model import (  # noqa: E402
    ANSWERED_STATES,
    RINGING_STATES,
    CallState,
    Direction,
    EndReason,
    Supervision,
    as_call_state,
    as_direction,
    as_end_reason,
)
from screens import lockdown, loop  # noqa: E402
from screens.activities.host import ActivityHost  # noqa: E402
from screens.call.sentences import calling_sentence, ended_sentence, refused_sentence  # noqa: E402
from screens.components import KV_FILES as COMPONENT_KV_FILES  # noqa: E402
from screens.components import background, load_kv_files  # noqa: E402
from screens.components.scheme import KioskThemeManager  # noqa: E402
from screens.enrolment import enrolment  # noqa: E402
from screens.home import home  # noqa: E402
from screens.picker import WhoIsHere  # noqa: E402

if TYPE_CHECKING:
    from kiosk.core import KioskCore
    from screens.call import incall, incoming, message, outgoing, supervise
    from screens.request import RequestFlow
    from screens.staff import StaffFlow

log = logging.getLogger(__name__)

# What the first screen needs (docs/kiosk.md, "Start-up"). The other screens' kv files are
# loaded with them, once the home is on screen: enrolment (when enrolled), "Ask for a contact",
# staff (LiensApp._build_later), the picker and the PIN keypad (WhoIsHere) and the calls
# (LiensApp.build_call_screens).
KV_FILES = (*COMPONENT_KV_FILES, home.KV_FILE)
# Seconds after the first frame: the screens the home does not show are built then, one part a
# frame (a touch in between is answered at once).
AFTER_FIRST_FRAME_DELAY = 0.25
# Seconds after the first frame: the call screens (numpy behind the video), one a frame; soon,
# so that a resident's first call does not wait for them, but after the home answers touches.
CALL_SCREENS_DELAY = 2.0
CALL_SCREEN_NAMES = (
    "call_outgoing",
    "call_incoming",
    "call_incall",
    "call_message",
    "call_supervise",
)
REFRESH_DELAY = 0.3  # seconds: bursts of MQTT events become one refresh
ENDED_SECONDS = 3.0  # the sentence after a call, then home
REFUSED_SECONDS = 20.0  # a refusal stays longer (it says when to call again); "Back" is there
ENGINE_SILENT_SECONDS = 5.0  # after "Hang up"/"Decline", home even if the engine says nothing
KEY_ESCAPE = 27
RETIRED: dict[str, Any] = {}  # sentinel pending config: the tablet was retired


@dataclass
class ShownCall:
    """The call the screens show: who (the tile's name and photo), which way, and the engine's
    state of it (``kiosk.calls.model``), as its last ``call`` event said — no state of its own.

    ``connected`` remembers that the call reached ``connected`` (the sentence at its end
    differs); ``answered`` only keeps a second touch on "Décrocher" from answering twice.
    """

    call_id: str
    approval_id: str
    direction: Direction
    name: str
    photo: str = ""
    initials: str = ""
    state: CallState = CallState.DIALLING
    connected: bool = False
    answered: bool = False

    @property
    def ended(self) -> bool:
        return self.state == CallState.ENDED

    def advance(self, state: CallState) -> None:
        """The engine says the call is now in ``state``."""
        self.state = state
        self.connected = self.connected or state == CallState.CONNECTED


class LiensApp(MDApp):
    """The tablet app: the enrolment screen until the tablet is enrolled, then the home screen.

    ``language`` is the language of every text; kv rules show ``app.tr(msgid, app.language)``
    so they follow it.
    """

    language = StringProperty(i18n.DEFAULT_LANGUAGE)

    def __init__(self, core: KioskCore | Any, *, fullscreen: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The Material colour scheme read, not computed, at each start (0.3 s): see its module.
        self.theme_cls = KioskThemeManager()
        self.title = "Liens"
        self.core = core
        self.fullscreen = fullscreen
        self.recorded: list[tuple[str, dict[str, Any]]] = []  # what the app recorded, for tests
        self._lock = threading.Lock()
        self._pending_config: dict[str, Any] | None = None
        self._pending_state: str | None = None
        self._refresh_trigger = Clock.create_trigger(self._apply_core_state, REFRESH_DELAY)
        self._clock_event: Any = None
        self._enrol_thread: threading.Thread | None = None
        self._stopped = False
        self.config_data: dict[str, Any] | None = None
        self.photo_paths: dict[str, str] = {}
        self._enrolment_screen: enrolment.EnrolmentScreen | None = None  # built when needed
        self.home_screen: home.HomeScreen | None = None
        # Built after the first frame, or at once when first needed (docs/kiosk.md, "Start-up").
        self._request_flow: RequestFlow | None = None
        self._staff_flow: StaffFlow | None = None
        self._call_screens: dict[str, Any] | None = None  # by name, as they are built
        self._building_staff = False
        self._first_frame_drawn = False
        self._start_after_first_frame = False
        self.manager: MDScreenManager | None = None
        self.call: ShownCall | None = None
        self._pending_calls: list[dict[str, Any]] = []
        self._call_timer: Any = None
        self._announcer: Any = None  # kiosk.speech.Announcer, made at the first announcement

    # --- translation -------------------------------------------------------------------------

    def tr(self, message: str, _language: str | None = None) -> str:
        """``message`` translated; kv passes ``app.language`` so the text follows it."""
        return i18n._(message)

    def on_language(self, _instance: Any, language: str) -> None:
        i18n.set_language(language)
        calls = self._call_screens or {}
        for screen in (
            self._enrolment_screen,
            self.home_screen,
            calls.get("call_outgoing"),
            calls.get("call_incoming"),
            calls.get("call_incall"),
            calls.get("call_supervise"),
        ):
            if screen is not None:
                screen.refresh_texts()
        if self.home_screen is not None:
            self._tick()

    # --- building ----------------------------------------------------------------------------

    def build(self) -> MDScreenManager:
        Config.set("kivy", "exit_on_escape", "0")
        Window.bind(on_keyboard=self._on_keyboard, on_request_close=self._on_request_close)
        # The window's mode is set before it exists: see screens.configure_window.
        self.theme_cls.theme_style = "Light"
        i18n.set_language(self.language)
        background.install()  # no see-through fills drawn (a software renderer blends them)
        load_kv_files(KV_FILES)

        # Only what the first screen needs; the rest is built after the first frame
        # (_build_later), or at once when it is needed first.
        self.manager = MDScreenManager()
        if self.core.needs_enrolment:
            self.enrolment_screen  # noqa: B018  (built now: the first screen, no transition)
        self.home_screen = home.HomeScreen(name="home")
        self.home_screen.bind(on_call_requested=self._on_call_requested)
        self.home_screen.bind(on_request_contact=self._on_early_request_contact)
        self.manager.add_widget(self.home_screen)
        # Who is using the tablet: picker -> (a youth's PIN) -> that resident's home only.
        self.who = WhoIsHere(self, self.manager, self.home_screen)
        # Activities (photos, a gentle game, the day and time): plug-ins, screens.activities.
        self.activities = ActivityHost(self, self.manager, self.home_screen)
        # The staff gesture works from the first frame: a hold begun before the staff flow is
        # built opens it (the flow's own gesture then answers; opening twice does nothing).
        self._early_gesture = lockdown.CornerHold()
        self._early_gesture.bind(on_hold=lambda _g: self.staff_flow.open())
        self._early_gesture.install(Window)
        return self.manager

    def on_start(self) -> None:
        # Kivy's loop sleeps until there is something to do (screens.loop), not 30 times a second.
        loop.install()
        self.core.set_listener(self._on_core_event)
        if self.core.needs_enrolment:
            self._show_enrolment()
        else:
            self._go_home()
        self._clock_event = Clock.schedule_interval(lambda _dt: self._tick(), 1.0)
        # The other screens are not needed for the first frame: built just after it.
        Window.bind(on_flip=self._after_first_frame)

    def _after_first_frame(self, *_args: Any) -> None:
        Window.unbind(on_flip=self._after_first_frame)
        self._first_frame_drawn = True
        if self._start_after_first_frame:
            self._start_core()
        Clock.schedule_once(lambda _dt: self._build_later(), AFTER_FIRST_FRAME_DELAY)
        Clock.schedule_once(lambda _dt: self._build_call_screens_later(), CALL_SCREENS_DELAY)

    def _build_later(self, step: int = 0) -> None:
        """The screens the home does not show, one part a frame: the enrolment screen, the
        staff's way out (the corner gesture, the brightness), "Ask for a contact", the picker
        and the PIN keypad (when not the first screen), the activities' screens."""
        if self._stopped or self.manager is None:
            return
        parts = self._later_parts()
        parts[step]()
        if step + 1 < len(parts):
            Clock.schedule_once(lambda _dt: self._build_later(step + 1), 0)

    def _later_parts(self) -> tuple[Callable[[], Any], ...]:
        return (
            lambda: self.enrolment_screen,
            lambda: self.staff_flow,
            lambda: self.request_flow,
            self.who.build_screens,
            self.activities.build_screens,
        )

    def _build_call_screens_later(self, step: int = 0) -> None:
        if self._stopped or self.manager is None:
            return
        names = CALL_SCREEN_NAMES
        self._call_screen(names[step])
        if step + 1 < len(names):
            Clock.schedule_once(lambda _dt: self._build_call_screens_later(step + 1), 0)

    # --- the screens built after the first frame, or when first needed -------------------------

    @property
    def enrolment_screen(self) -> enrolment.EnrolmentScreen:
        if self._enrolment_screen is None:
            load_kv_files((enrolment.KV_FILE,))
            screen = enrolment.EnrolmentScreen(name="enrolment")
            screen.server_url = str(self.core.default_server_url or "")
            screen.bind(on_enrol_requested=self._on_enrol_requested)
            self._enrolment_screen = screen
            if self.manager is not None:
                self.manager.add_widget(screen)
        return self._enrolment_screen

    def _show_enrolment(self) -> None:
        if self.manager is not None:
            self.enrolment_screen  # noqa: B018  (built if it was not yet)
            self.manager.current = "enrolment"

    @property
    def request_flow(self) -> RequestFlow:
        """ "Demander un contact" (youth): its screens, routed home -> relation -> sent -> home."""
        if self._request_flow is None:
            from screens.request import KV_FILES as REQUEST_KV_FILES
            from screens.request import RequestFlow

            load_kv_files(REQUEST_KV_FILES)
            self._request_flow = RequestFlow(
                self.core, self.manager, self.home_screen, recorded=self.recorded
            )
        return self._request_flow

    def _on_early_request_contact(self, home_screen: Any, *args: Any) -> None:
        # A youth's tap before the flow was built: build it and let it answer (its own
        # binding answers the next ones; answering twice is harmless).
        if self._request_flow is None:
            self.request_flow._on_request_contact(home_screen, *args)
        home_screen.unbind(on_request_contact=self._on_early_request_contact)

    @property
    def staff_flow(self) -> StaffFlow:
        """Lockdown's way out: corner gesture -> staff PIN -> staff screen (screens.staff)."""
        if self._staff_flow is None:
            from screens.staff import KV_FILES as STAFF_KV_FILES
            from screens.staff import StaffFlow

            self.enrolment_screen  # noqa: B018  (staff may send the tablet back to enrolment)
            load_kv_files(STAFF_KV_FILES)
            # The in-call volume buttons are bound once the in-call screen exists
            # (_bind_hearing): building the staff flow does not build the call screens.
            self._building_staff = True
            try:
                self._staff_flow = StaffFlow(self, self.manager)
            finally:
                self._building_staff = False
            self._bind_hearing()
        return self._staff_flow

    def _bind_hearing(self) -> None:
        """Give the staff flow's hearing the in-call screen, once both exist."""
        flow, incall_screen = self._staff_flow, (self._call_screens or {}).get("call_incall")
        if flow is None or incall_screen is None or flow.hearing.incall is not None:
            return
        from screens.staff.hearing import HearingFlow

        flow.staff_screen.unbind(on_hearing_changed=flow.hearing._on_hearing_changed)
        flow.hearing = HearingFlow(self, flow.staff_screen, self.core)

    # --- the call screens, built after the first frame ----------------------------------------

    def build_call_screens(self) -> dict[str, Any]:
        """Build every screen not built yet: the five call screens (kv files, imports,
        bindings), and the others built after the first frame (enrolment, staff, "Ask for a
        contact"), as before the first frame they all were; return the call screens by name.
        """
        if self.manager is not None:
            for part in self._later_parts():
                part()
        for name in CALL_SCREEN_NAMES:
            self._build_call_screen(name)
        assert self._call_screens is not None
        return self._call_screens

    def _build_call_screen(self, name: str) -> Any:
        if self._call_screens is not None and name in self._call_screens:
            return self._call_screens[name]
        from screens.call import KV_FILES as CALL_KV_FILES
        from screens.call import incall, incoming, message, outgoing, supervise

        load_kv_files(CALL_KV_FILES)
        screen: Any
        if name == "call_outgoing":
            screen = outgoing.OutgoingCallScreen(name=name)
            screen.bind(on_cancel_requested=self._on_hang_up_requested)
        elif name == "call_incoming":
            screen = incoming.IncomingCallScreen(name=name)
            screen.bind(
                on_answer_requested=self._on_answer_requested,
                on_decline_requested=self._on_decline_requested,
            )
        elif name == "call_incall":
            screen = incall.InCallScreen(name=name)
            screen.bind(on_hang_up_requested=self._on_hang_up_requested)
        elif name == "call_message":
            screen = message.CallMessageScreen(name=name)
            screen.bind(on_back_requested=lambda _screen: self._back_home())
        elif name == "call_supervise":
            # Supervised calls: a staff PIN before dialling or answering (screens.call.supervise).
            screen = supervise.SupervisionScreen(name=name)
            screen.bind(
                on_pin_entered=self._on_pin_entered,
                on_cancel_requested=self._on_hang_up_requested,
            )
        else:
            raise KeyError(name)
        if self._call_screens is None:
            self._call_screens = {}
        self._call_screens[name] = screen
        if self.manager is not None:
            self.manager.add_widget(screen)
        if name == "call_incall":
            self._bind_hearing()
        return screen

    def _call_screen(self, name: str) -> Any:
        if self.manager is None:
            return None
        if self._building_staff:
            return (self._call_screens or {}).get(name)  # see staff_flow
        return self._build_call_screen(name)

    @property
    def outgoing_screen(self) -> outgoing.OutgoingCallScreen | None:
        return self._call_screen("call_outgoing")  # type: ignore[no-any-return]

    @property
    def incoming_screen(self) -> incoming.IncomingCallScreen | None:
        return self._call_screen("call_incoming")  # type: ignore[no-any-return]

    @property
    def incall_screen(self) -> incall.InCallScreen | None:
        return self._call_screen("call_incall")  # type: ignore[no-any-return]

    @property
    def message_screen(self) -> message.CallMessageScreen | None:
        return self._call_screen("call_message")  # type: ignore[no-any-return]

    @property
    def supervise_screen(self) -> supervise.SupervisionScreen | None:
        return self._call_screen("call_supervise")  # type: ignore[no-any-return]

    def on_stop(self) -> None:
        # Kivy dispatches on_stop twice when stop() is called before run() returns.
        if self._stopped:
            return
        self._stopped = True
        if self._clock_event is not None:
            self._clock_event.cancel()
        self._cancel_call_timer()
        ringing = (self._call_screens or {}).get("call_incoming")
        if ringing is not None:
            ringing.ringtone.stop()
        try:
            self.core.set_listener(None)
            # close() hangs up first, while the link can still tell the relative.
            close = getattr(self.core, "close", None)
            (close if callable(close) else self.core.stop)()
        except Exception:
            log.exception("core did not stop cleanly")

    def _go_home(self) -> None:
        # Start first: the core reports "offline" until it tries, and the resident should see
        # the offline line only when the network is really missing.
        self._start_core()
        self._pending_config = self.core.config
        self._pending_state = self.core.connection_state
        self._apply_core_state()
        self._tick()
        self.who.show_start()

    def _start_core(self) -> None:
        """``core.start()``; a core with ``prepare_start`` (KioskCore: the call engine's imports,
        aiortc and FFmpeg) first has it run off the main thread, so the home is drawn meanwhile.
        """
        prepare = getattr(self.core, "prepare_start", None)
        if not callable(prepare):
            self.core.start()
            return
        if not self._first_frame_drawn:
            self._start_after_first_frame = True  # the import would slow the home's first frame
            return

        def work() -> None:
            try:
                prepare()
            except Exception:
                log.exception("could not prepare the core's start")  # start() says it again
            Clock.schedule_once(lambda _dt: self._core_prepared(), 0)

        threading.Thread(target=work, name="liens-start", daemon=True).start()

    def _core_prepared(self) -> None:
        if self._stopped:
            return
        self.core.start()
        with self._lock:
            if self._pending_state is None:
                self._pending_state = self.core.connection_state
        self._refresh_trigger()

    # --- lockdown (the proper kiosk lockdown is a later issue) --------------------------------

    def _on_keyboard(self, _window: Any, key: int, *_args: Any) -> bool:
        # Escape (and Android's back key, also 27) must never close the app under a resident.
        return key == KEY_ESCAPE or lockdown.swallow_key(key, *_args)

    def _on_request_close(self, *_args: Any, **_kwargs: Any) -> bool:
        return True

    def open_settings(self, *_args: Any, **_kwargs: Any) -> bool:
        """Kivy's settings panel (F1, Android's menu key) would be a way out: never."""
        return False

    # --- core events (any thread) -------------------------------------------------------------

    def _on_core_event(self, event: dict[str, Any]) -> None:
        """The core's listener: runs on paho's threads, so it only stores and schedules."""
        kind = event.get("event")
        if kind == "command" and event.get("command") == "reset_pin_lock":
            # Staff cleared a child's PIN lock-out from the dashboard.
            rid = (event.get("data") or {}).get("resident_id")
            Clock.schedule_once(lambda _dt: self.who.reset_lock(str(rid) if rid else None), 0)
            return
        if kind == "call":
            # Not coalesced: every state counts, in order (ringing, then ended...).
            with self._lock:
                self._pending_calls.append(dict(event))
            Clock.schedule_once(self._apply_call_events, 0)
            return
        with self._lock:
            if kind == "config":
                self._pending_config = event.get("config")
                if self._pending_state is None:
                    self._pending_state = "online"
            elif kind == "connected":
                self._pending_state = "online"
            elif kind == "disconnected":
                self._pending_state = "offline"
            elif kind == "retired":
                # The backend cleared this tablet's config: show nothing of its residents.
                self._pending_config = RETIRED
            else:
                return
        Clock.schedule_once(lambda _dt: self._refresh_trigger(), 0)

    def _apply_core_state(self, *_args: Any) -> None:
        with self._lock:
            config, self._pending_config = self._pending_config, None
            state, self._pending_state = self._pending_state, None
        if state is not None and self.home_screen is not None:
            self.home_screen.connection_state = state
        if config is RETIRED:
            self.config_data = None
            if self.home_screen is not None:
                self.home_screen.has_config = False
                self.home_screen.sections = []
            self.who.update(None, {})
            if self.core.needs_enrolment:
                # Staff retired the tablet: the core forgot its credentials; ask to enrol again.
                self._show_enrolment()
        elif config is not None:
            self.config_data = config
            self._show_config(config)

    def _show_config(self, config: dict[str, Any]) -> None:
        residents = viewmodel.residents(config)
        if residents:
            self.language = i18n.normalise_language(_resident_language(config))
        if self.home_screen is not None:
            self.home_screen.has_config = True
        # Only the resident using the tablet: their tiles, with each tile's state now.
        self.who.update(config, self._photo_paths())

    def _photo_paths(self) -> dict[str, str]:
        core_paths = getattr(self.core, "photo_paths", None)
        if callable(core_paths):
            return dict(core_paths())
        return self.photo_paths

    def _tick(self) -> None:
        if self.home_screen is not None:
            self.home_screen.tick(datetime.now(_home_timezone(self.config_data)))
        if getattr(self, "who", None) is not None:
            self.who.tick()  # tile states each minute; the picker after 2 min without a touch

    # --- messages from the screens ------------------------------------------------------------

    def _on_call_requested(self, _screen: Any, approval_id: str) -> None:
        resident_id = ""
        for tile in viewmodel.contact_tiles(self.config_data):
            if tile["approval_id"] == approval_id:
                resident_id = tile["resident_id"]
                break
        data = {"approval_id": approval_id, "resident_id": resident_id}
        self.recorded.append(("call_requested", data))
        try:
            self.core.record("call_requested", data)
        except Exception:
            # A resident never sees an error screen; the outbox is the core's business.
            log.exception("could not record call_requested")
        self._start_call(approval_id)

    # --- calls (main thread) ------------------------------------------------------------------

    def _contact_tile(self, approval_id: str) -> dict[str, Any]:
        for tile in viewmodel.contact_tiles(self.config_data, None, self._photo_paths()):
            if tile["approval_id"] == approval_id:
                return dict(tile)
        return {}

    def _start_call(self, approval_id: str) -> None:
        start_call = getattr(self.core, "start_call", None)
        if start_call is None:  # a core without a call engine: the tap was only recorded
            return
        if self.call is not None and not self.call.ended:
            return
        tile = self._contact_tile(approval_id)
        shown = ShownCall(
            call_id="",
            approval_id=approval_id,
            direction=Direction.OUTGOING,
            name=str(tile.get("name", "")),
            photo=str(tile.get("photo", "")),
            initials=str(tile.get("initials", "")),
        )
        try:
            # Non-blocking in the engine: the policy check is local, the rest happens later.
            shown.call_id = str(start_call(approval_id))
        except Exception as exc:  # kiosk.calls.CallRefused carries reason and next_allowed
            reason = getattr(exc, "reason", None)
            if reason is None:
                log.exception("start_call failed")
                reason = EndReason.ERROR
            shown.advance(CallState.ENDED)
            self.call = shown
            sentence = refused_sentence(
                str(reason),
                shown.name,
                getattr(exc, "next_allowed", None),
                now=datetime.now(UTC),
                timezone=_home_timezone(self.config_data),
            )
            self._show_message(shown, sentence, show_back=True, seconds=REFUSED_SECONDS)
            return
        self.call = shown
        self._show_outgoing(CallState.DIALLING)
        if self.outgoing_screen is not None:
            self._announce(
                self.outgoing_screen,
                shown.call_id,
                str(tile.get("resident_id") or ""),
                calling_sentence(shown.name) if shown.name else "",
            )

    def _apply_call_events(self, *_args: Any) -> None:
        with self._lock:
            events, self._pending_calls = self._pending_calls, []
        for event in events:
            try:
                self._show_call_event(event)
            except Exception:
                log.exception("could not show call event %r", event.get("state"))

    def _show_call_event(self, event: dict[str, Any]) -> None:
        if self.manager is None or self.manager.current == "enrolment":
            return
        state = as_call_state(event.get("state"))
        if state is None:
            log.warning("call event with an unknown state %r ignored", event.get("state"))
            return
        call_id = str(event.get("call_id") or "")
        shown = self.call
        if shown is None or shown.call_id != call_id:
            if state == CallState.ENDED or not self._may_replace_call(call_id):
                return  # the last word of an old call, or a stray one while a call is on
            shown = self.call = self._shown_call(event)
        if event.get("contact_name"):
            shown.name = str(event["contact_name"])
        if shown.ended:
            return  # its end is on screen (a refusal, or the engine's "ended")
        if state == CallState.ENDED:
            self._end_call(event.get("reason"), event.get("ended_by"))
            return
        shown.advance(state)
        if state in RINGING_STATES:
            if shown.direction == Direction.OUTGOING:
                self._show_outgoing(state)
        elif state == CallState.INCOMING:
            self._show_incoming(shown, event.get("auto_answer_s"))
            if self.incoming_screen is not None:
                self._announce(
                    self.incoming_screen,
                    shown.call_id,
                    str(event.get("resident_id") or ""),
                    self.incoming_screen.title_text,
                )
        elif state == CallState.SUPERVISING:
            self._show_supervision(shown, event)
        elif state in ANSWERED_STATES:
            if self.incall_screen is not None:
                self.incall_screen.warning = str(event.get("warning") or "")
            self._show_incall(shown)

    def _may_replace_call(self, call_id: str) -> bool:
        shown = self.call
        if shown is None or shown.ended:
            return True
        # A call we never heard end: trust the engine about which call is on.
        engine_call = getattr(self.core, "call", None)
        return engine_call is None or str(getattr(engine_call, "call_id", "")) == call_id

    def _shown_call(self, event: dict[str, Any]) -> ShownCall:
        approval_id = str(event.get("approval_id") or "")
        tile = self._contact_tile(approval_id)
        return ShownCall(
            call_id=str(event.get("call_id") or ""),
            approval_id=approval_id,
            direction=as_direction(event.get("direction")) or Direction.INCOMING,
            name=str(event.get("contact_name") or tile.get("name", "")),
            photo=str(tile.get("photo", "")),
            initials=str(tile.get("initials", "")),
        )

    def _show_screen(self, name: str) -> None:
        self._cancel_call_timer()
        if self.manager is not None and self.manager.current != name:
            self.manager.current = name

    def _show_outgoing(self, state: CallState) -> None:
        screen, shown = self.outgoing_screen, self.call
        if screen is None or shown is None:
            return
        screen.contact_name, screen.photo, screen.initials = shown.name, shown.photo, shown.initials
        screen.state = state
        self._show_screen(screen.name)

    def _show_incoming(self, shown: ShownCall, auto_answer_s: Any) -> None:
        screen = self.incoming_screen
        if screen is None:
            return
        seconds = int(auto_answer_s) if isinstance(auto_answer_s, int | float) else -1
        screen.ring(
            contact_name=shown.name,
            photo=shown.photo,
            initials=shown.initials,
            auto_answer_s=seconds,
        )
        self._show_screen(screen.name)

    def _announce(self, screen: Any, call_id: str, resident_id: str, text: str) -> None:
        """Have ``screen`` say ``text`` for call ``call_id``, if ``resident_id``'s setting says
        so (``kiosk.speech``): who calls on the ringing screen, who is called on the outgoing one.

        The setting is read and the sentence synthesised (once, then kept) off the main thread;
        the screen gets it when it is ready, if it still shows that call."""
        if not resident_id or not text:
            return
        language = i18n.get_language()
        data_dir = getattr(getattr(self.core, "settings", None), "data_dir", None)
        if self._announcer is None:
            from kiosk import speech

            self._announcer = speech.announcer_for(data_dir)
        announcer = self._announcer

        def work() -> None:
            from kiosk.audio import hearing

            try:
                profiles = hearing.use_data_dir(data_dir) if data_dir else hearing.profiles()
                wanted = profiles.get(resident_id).announce
            except Exception:
                log.exception("could not read the hearing setting of %s", resident_id)
                return
            if wanted:
                path = announcer.speech(text, language)
                if path is not None:
                    Clock.schedule_once(
                        lambda _dt: self._announcement_ready(screen, call_id, path), 0
                    )

        threading.Thread(target=work, name="liens-announce", daemon=True).start()

    def _announcement_ready(self, screen: Any, call_id: str, path: Any) -> None:
        shown = self.call
        if shown is None or shown.ended or shown.call_id != call_id:
            return
        if self.manager is not None and self.manager.current == screen.name:
            screen.announce(str(path))

    def _show_incall(self, shown: ShownCall) -> None:
        screen = self.incall_screen
        if screen is None:
            return
        screen.contact_name = shown.name
        screen.remote_source = getattr(self.core, "remote_video", None)
        screen.local_source = getattr(self.core, "local_video", None)
        self._show_screen(screen.name)

    def _show_supervision(self, shown: ShownCall, event: dict[str, Any]) -> None:
        screen = self.supervise_screen
        if screen is None:
            return
        left = event.get("pin_attempts_left")
        screen.show(
            contact_name=shown.name,
            direction=shown.direction,
            supervision=str(event.get("supervision") or Supervision.REQUIRED),
            pin_error=event.get("pin_error"),
            attempts_left=left if isinstance(left, int) else 3,
        )
        if self.manager is not None and self.manager.current != screen.name:
            self._show_screen(screen.name)

    def _on_pin_entered(self, _screen: Any, pin: str) -> None:
        supervise_call = getattr(self.core, "supervise", None)
        if self.call is None or self.call.ended or supervise_call is None:
            return
        try:
            supervise_call(pin)
        except Exception:
            log.exception("core.supervise failed")

    def _end_call(self, reason: Any, ended_by: Any = None) -> None:
        shown = self.call
        if shown is None or shown.ended:
            return
        shown.advance(CallState.ENDED)
        sentence = ended_sentence(
            as_end_reason(reason),
            shown.name,
            direction=shown.direction,
            connected=shown.connected,
            ended_by=str(ended_by) if ended_by else None,
        )
        self._show_message(shown, sentence, show_back=False, seconds=ENDED_SECONDS)

    def _show_message(
        self, shown: ShownCall, sentence: str, *, show_back: bool, seconds: float
    ) -> None:
        screen = self.message_screen
        if screen is None:
            return
        screen.contact_name, screen.photo, screen.initials = shown.name, shown.photo, shown.initials
        screen.sentence = sentence
        screen.show_back = show_back
        self._show_screen(screen.name)
        self._call_timer = Clock.schedule_once(lambda _dt: self._back_home(), seconds)

    def _back_home(self) -> None:
        self._cancel_call_timer()
        call = self.call
        if self.call is not None and self.call.ended:
            self.call = None
        if self.manager is not None and self.manager.current != "enrolment":
            # After a call, the picker; after a call that did not start, the same home.
            was_call = call is not None and (call.connected or call.direction == Direction.INCOMING)
            self.who.after_call(was_call)

    def _cancel_call_timer(self) -> None:
        if self._call_timer is not None:
            self._call_timer.cancel()
            self._call_timer = None

    def _when_engine_silent(self, reason: EndReason) -> None:
        # If the engine's "ended" never comes, the resident must not stay on a dead screen.
        shown = self.call
        self._cancel_call_timer()

        def give_up(_dt: float) -> None:
            if self.call is shown and shown is not None and not shown.ended:
                log.warning("no end of call %s from the engine; going home", shown.call_id)
                self._end_call(reason)

        self._call_timer = Clock.schedule_once(give_up, ENGINE_SILENT_SECONDS)

    def _core_action(self, name: str) -> None:
        try:
            getattr(self.core, name)()
        except Exception:
            log.exception("core.%s failed", name)

    def _on_answer_requested(self, _screen: Any) -> None:
        shown = self.call
        if shown is None or shown.ended or shown.answered:
            return
        shown.answered = True
        self._core_action("answer_call")

    def _on_decline_requested(self, _screen: Any) -> None:
        if self.call is None or self.call.ended:
            return
        self._core_action("decline_call")
        self._when_engine_silent(EndReason.DECLINED)

    def _on_hang_up_requested(self, _screen: Any) -> None:
        if self.call is None or self.call.ended:
            return
        self._core_action("hang_up")
        self._when_engine_silent(EndReason.HUNG_UP)

    def _on_enrol_requested(self, screen: Any, server_url: str, code: str) -> None:
        if self._enrol_thread is not None and self._enrol_thread.is_alive():
            return
        screen.busy = True
        self._enrol_thread = threading.Thread(
            target=self._enrol_worker, args=(server_url, code), name="liens-enrol", daemon=True
        )
        self._enrol_thread.start()

    def _enrol_worker(self, server_url: str, code: str) -> None:
        reason = ""
        try:
            self.core.enrol(server_url, code)
        except Exception as exc:  # EnrolmentError carries .reason; anything else is unexpected
            reason = str(getattr(exc, "reason", "") or "unexpected")
            if reason == "unexpected":
                log.exception("enrolment failed")
        Clock.schedule_once(lambda _dt: self._enrol_done(reason), 0)

    def _enrol_done(self, reason: str) -> None:
        screen = self._enrolment_screen
        if screen is None:
            return
        screen.busy = False
        if reason:
            screen.error_reason = reason
            return
        screen.code = ""
        screen.error_reason = ""
        self._go_home()


def _resident_language(config: dict[str, Any]) -> str | None:
    for resident in config.get("residents", []):
        language = resident.get("language")
        if language:
            return str(language)
    return None


def _home_timezone(config: dict[str, Any] | None) -> tzinfo | None:
    name = ((config or {}).get("home") or {}).get("timezone")
    if not name:
        return None
    try:
        return ZoneInfo(str(name))
    except (KeyError, ValueError, OSError):
        return None


def run(core: KioskCore | Any, *, fullscreen: bool = True) -> None:
    """Run the tablet app over ``core`` until the app is stopped (``liens kiosk``)."""
    app = LiensApp(core, fullscreen=fullscreen)
    app.run()
    if getattr(app._staff_flow, "left_by_staff", False):
        # Staff left the kiosk: a status systemd does not restart on (deploy/kiosk/).
        raise SystemExit(lockdown.STAFF_EXIT_STATUS)
