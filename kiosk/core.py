"""The kiosk core: enrolment, the link, the cached configuration and the outbox, with no window.

The screens (``screens/``) and the headless runner (``kiosk.headless``) both drive this class.
Its listener is called from background threads with plain dicts; a UI must hop to its own
thread before touching widgets.

Calls (docs/calls.md) run in :class:`kiosk.calls.engine.CallEngine`, started with the link; its
``call`` events reach the same listener, and the actions below only schedule work on its loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk import enrolment, heartbeat, speech
from kiosk.calls import CallInfo, CallRefused, CallStats, LatestFrame
from kiosk.calls.model import EndReason
from kiosk.link import Link, event_item
from kiosk.photos import PhotoCache, PhotoSync, SyncSummary, portrait_files
from kiosk.settings import Credentials, KioskSettings, TabletPreferences
from kiosk.store import Store

if TYPE_CHECKING:
    from kiosk.calls.engine import CallEngine

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class KioskCore:
    """Everything the tablet does, minus the screens."""

    def __init__(
        self,
        settings: KioskSettings,
        listener: Listener | None = None,
        *,
        media: str = "auto",
        answer: str = "manual",
        ring_timeout_s: float = 45.0,
    ) -> None:
        self.settings = settings
        self._listener = listener
        self._lock = threading.Lock()
        self.store = Store(settings.store_path)
        self.credentials: Credentials | None = settings.load_credentials()
        self._config: dict[str, Any] | None = self.store.load_config()
        self.link: Link | None = None
        # "idle": enrolled but not started yet; "connecting" once start() is called.
        self._state = "not_enrolled" if self.credentials is None else "idle"
        # Calls: media "synthetic" | "devices" | "auto"; answer "manual" | "auto" (every allowed
        # incoming call is answered at once: benchmarks).
        self.media = media
        self.answer = answer
        self.ring_timeout_s = ring_timeout_s
        self.remote_video = LatestFrame()
        self.local_video = LatestFrame()
        self._engine: CallEngine | None = None
        self.preferences: TabletPreferences = settings.load_preferences()
        # Family photos (docs/photos.md): downloaded after each config, in their own thread.
        self.photos = PhotoCache(settings.data_dir / "photos")
        self._photo_sync = PhotoSync(self.photos, on_done=self._photos_synced)
        # Battery, storage and version for the staff's fleet page, at start and every 15 min.
        self._heartbeat = heartbeat.Heartbeat(
            self.record, lambda: heartbeat.read(settings.data_dir, settings.app_version)
        )

    # -- what the screens read -----------------------------------------------------------------

    @property
    def needs_enrolment(self) -> bool:
        return self.credentials is None

    @property
    def config(self) -> dict[str, Any] | None:
        return self._config

    @property
    def connection_state(self) -> str:
        return self._state

    def photo_paths(self) -> dict[str, str]:
        """Contact id -> the cached portrait file (the home tiles; no entry: initials)."""
        return self.photos.contact_portraits(self._config)

    def resident_photo_paths(self) -> dict[str, str]:
        """Resident id -> the cached portrait file (the picker; no entry: initials)."""
        return self.photos.resident_portraits(self._config)

    @property
    def default_server_url(self) -> str:
        if self.credentials is not None:
            return self.credentials.server_url
        return self.settings.server_url

    @property
    def tablet_id(self) -> str | None:
        return self.credentials.tablet_id if self.credentials else None

    @property
    def app_version(self) -> str:
        return self.settings.app_version

    @property
    def tablet_name(self) -> str:
        return self.credentials.tablet_name if self.credentials else ""

    def media_devices(self) -> dict[str, bool | None]:
        """Whether a microphone and a speaker were found (None: could not be checked here).

        Read from ALSA's ``/proc/asound/pcm`` ("capture" and "playback" devices); without ALSA
        (Android, a container) nothing is known.
        """
        try:
            text = Path("/proc/asound/pcm").read_text()
        except OSError:
            return {"microphone": None, "speaker": None}
        return {"microphone": "capture" in text, "speaker": "playback" in text}

    def save_preferences(self, preferences: TabletPreferences) -> None:
        """Keep the staff screen's language, volume and brightness (the call engine reads the
        volume from ``preferences``)."""
        self.preferences = preferences
        self.settings.save_preferences(preferences)

    def forget_enrolment(self) -> None:
        """Staff re-enrol the tablet from its staff screen: hang up, disconnect, and forget the
        credentials and the cached configuration, so that the enrolment screen comes back.

        Main thread only (it stops the link and waits for it).
        """
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self.stop()
        self.settings.forget_credentials()
        self.store.clear_config()
        speech.forget(self.settings.data_dir)
        self.credentials = None
        self._config = None
        self._state = "not_enrolled"

    def set_listener(self, listener: Listener | None) -> None:
        self._listener = listener

    @property
    def call(self) -> CallInfo | None:
        """The call in progress (``None`` when idle, including once a call has ended)."""
        return self._engine.call if self._engine is not None else None

    def call_stats(self) -> CallStats:
        """Counters of the call in progress, or of the last call once it ended."""
        return self._engine.call_stats() if self._engine is not None else CallStats()

    # -- actions -------------------------------------------------------------------------------

    def enrol(self, server_url: str, code: str) -> None:
        """Exchange ``code`` for credentials, keep them (mode 600) and connect.

        Blocking (an HTTP request): call it off the UI thread. Raises
        :class:`kiosk.enrolment.EnrolmentError`.
        """
        credentials = enrolment.enrol(server_url, code, app_version=self.settings.app_version)
        self.settings.save_credentials(credentials)
        if self.link is not None:
            self.link.stop()
            self.link = None
        # A new identity starts from a clean cache: nothing of a previous enrolment is shown.
        self.store.clear_config()
        self._config = None
        self.credentials = credentials
        self._state = "offline"
        self._emit({"event": "enrolled", "tablet_id": credentials.tablet_id})
        self.start()

    def prepare_start(self) -> None:
        """Import what ``start()`` needs (the call engine: aiortc, FFmpeg), from any thread.

        The app runs it off its main thread before ``start()``, so that these imports do not
        hold up the first frame of the home (docs/kiosk.md, "Start-up").
        """
        if self.credentials is not None:
            import kiosk.calls.engine  # noqa: F401

    def start(self) -> None:
        """Connect in the background (no-op before enrolment or when already started)."""
        if self.credentials is None or self.link is not None:
            return
        self._start_calls()
        self._state = "connecting"
        self.link = Link(
            self.credentials,
            self.store,
            app_version=self.settings.app_version,
            listener=self._on_link_event,
        )
        self.link.start()
        self._heartbeat.start()
        self._sync_photos()  # a download broken by the last shutdown resumes now

    def stop(self) -> None:
        self._heartbeat.stop()
        if self.link is not None:
            self.link.stop()
            self.link = None
        self._state = "not_enrolled" if self.credentials is None else "offline"

    def close(self) -> None:
        # Hang up first, while the link can still tell the other side.
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self._photo_sync.stop()
        self.stop()
        self.store.close()

    def record(self, event_type: str, data: dict[str, Any]) -> str:
        """Put a usage event in the durable outbox (sent when connected); returns its id."""
        if self.link is not None:
            return self.link.send_event(event_type, data)
        if self.credentials is None:
            raise RuntimeError("the tablet is not enrolled")
        # Not started yet: the event waits in the outbox and leaves on the first connection.
        item = event_item(self.credentials.tablet_id, event_type, data)
        self.store.enqueue(item)
        return item.id

    def request_contact(self, resident_id: str, who: str, relation: str) -> str:
        """A child asks the staff for a new contact ("Demander un contact"); returns the event id.

        ``who`` is what the child picked (a label's msgid, "Mum"), ``relation`` its key
        ("mother"). The ``contact_request`` event waits in the outbox like any other; the
        backend queues one request per event id.
        """
        return self.record(
            "contact_request", {"resident_id": resident_id, "who": who, "relation": relation}
        )

    # -- calls ---------------------------------------------------------------------------------

    def start_call(self, approval_id: str) -> str:
        """Call a contact; returns the call id at once (the rest arrives as ``call`` events).

        Raises :class:`kiosk.calls.CallRefused` when the tablet's own checks fail: ``policy``
        (unknown approval, outside the allowed hours, calls per day reached; ``next_allowed``
        says when), ``busy`` (a call is already on) or ``network`` (not connected).
        """
        link = self.link
        if link is None or not link.connected or self._engine is None:
            raise CallRefused(EndReason.NETWORK)
        return self._engine.start_call(approval_id)

    def answer_call(self) -> None:
        if self._engine is not None:
            self._engine.answer_call()

    def decline_call(self) -> None:
        if self._engine is not None:
            self._engine.decline_call()

    def hang_up(self) -> None:
        if self._engine is not None:
            self._engine.hang_up()

    def supervise(self, pin: str) -> None:
        """A member of staff typed their PIN for the supervised call on screen (the backend
        checks it; a ``call`` event with ``supervision`` says how it went)."""
        if self._engine is not None:
            self._engine.supervise(pin)

    def _start_calls(self) -> None:
        if self._engine is not None:
            return
        # Imported here: aiortc and FFmpeg load only when the tablet goes online.
        from kiosk.calls.engine import CallEngine

        self._engine = CallEngine(
            send_signal=self._send_signal,
            emit=self._emit,
            record=self.record,
            config=lambda: self._config,
            remote_video=self.remote_video,
            local_video=self.local_video,
            media=self.media,
            answer=self.answer,
            ring_timeout_s=self.ring_timeout_s,
        )
        self._engine.start()

    def _send_signal(self, data: dict[str, Any]) -> None:
        link = self.link
        if link is None:
            log.warning("no link: signal %s dropped", data.get("kind"))
            return
        link.send_signal(data)

    # -- link events ---------------------------------------------------------------------------

    def _on_link_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "connected":
            self._state = "online"
        elif kind == "disconnected":
            self._state = "offline"
        elif kind == "config":
            self._config = event["config"]
            if self._engine is not None:
                self._engine.on_config()
            self._sync_photos()
        elif kind == "retired":
            if self._engine is not None:
                self._engine.hang_up()
            self._forget_enrolment()
        elif kind == "signal":
            # Signalling is the call engine's business (and carries SDP): not for the listener.
            if self._engine is not None and isinstance(event.get("data"), dict):
                self._engine.on_signal(event["data"])
            return
        elif kind == "command" and event.get("command") == "end_call":
            data = event.get("data") or {}
            if self._engine is not None:
                call_id = data.get("call_id")
                self._engine.end_by_staff(call_id if isinstance(call_id, str) else None)
        self._emit(event)

    def _sync_photos(self) -> None:
        credentials = self.credentials
        if credentials is None or self._config is None:
            return
        self._photo_sync.request(
            self._config,
            server_url=credentials.server_url,
            auth=(credentials.mqtt.username, credentials.mqtt.password),
        )

    def _photos_synced(self, summary: SyncSummary) -> None:
        self._emit(
            {
                "event": "photos",
                "downloaded": len(summary.downloaded) + len(summary.resumed),
                "failed": len(summary.failed),
                "deleted": len(summary.deleted),
            }
        )
        config = self._config
        portraits = {f.sha256 for f in portrait_files(config)}
        arrived = set(summary.downloaded) | set(summary.resumed)
        if config is not None and arrived & portraits:
            # A portrait reached the tablet after its config: the screens draw the tiles and
            # the picker again from the same config, now with the photo instead of initials.
            self._emit(
                {
                    "event": "config",
                    "revision": config.get("revision"),
                    "config": config,
                    "refresh": "portraits",
                }
            )

    def _forget_enrolment(self) -> None:
        """Staff retired this tablet: drop its credentials so that it asks to be enrolled again.

        Called from paho's thread, which cannot stop its own loop: the link is stopped from a
        short-lived thread.
        """
        self._config = None
        self.credentials = None
        self.settings.forget_credentials()
        speech.forget(self.settings.data_dir)
        self._state = "not_enrolled"
        link, self.link = self.link, None
        if link is not None:
            threading.Thread(target=link.stop, name="link-stop", daemon=True).start()

    def _emit(self, event: dict[str, Any]) -> None:
        listener = self._listener
        if listener is None:
            return
        try:
            listener(event)
        except Exception:
            log.exception("listener failed on %s", event.get("event"))
