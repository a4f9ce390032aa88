"""A stand-in for ``kiosk.core.KioskCore`` at the UI boundary: same methods, no network.

The listener is called from a background thread, as paho does, so the app's thread hop is
exercised for real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class FakeEnrolmentError(Exception):
    """Same shape as ``kiosk.enrolment.EnrolmentError``: a ``reason`` string."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FakeCore:
    """Implements the ``KioskCore`` interface the app uses, and remembers every call."""

    def __init__(
        self,
        *,
        config: dict[str, Any] | None = None,
        needs_enrolment: bool = False,
        connection_state: str = "offline",
        default_server_url: str = "https://liens.example.org",
        photo_paths: dict[str, str] | None = None,
    ) -> None:
        self._config = config
        self._needs_enrolment = needs_enrolment
        self._connection_state = connection_state
        self._default_server_url = default_server_url
        self._photo_paths = photo_paths or {}
        self.listener: Callable[[dict[str, Any]], None] | None = None
        self.enrol_calls: list[tuple[str, str]] = []
        self.enrol_failures: list[str] = []  # reasons to raise, one per call, then succeed
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.started = 0
        self.stopped = 0

    @property
    def needs_enrolment(self) -> bool:
        return self._needs_enrolment

    @property
    def config(self) -> dict[str, Any] | None:
        return self._config

    @property
    def connection_state(self) -> str:
        return self._connection_state

    @property
    def default_server_url(self) -> str:
        return self._default_server_url

    def photo_paths(self) -> dict[str, str]:
        return dict(self._photo_paths)

    def enrol(self, server_url: str, code: str) -> None:
        assert threading.current_thread() is not threading.main_thread(), "enrol on main thread"
        self.enrol_calls.append((server_url, code))
        if self.enrol_failures:
            raise FakeEnrolmentError(self.enrol_failures.pop(0))
        self._needs_enrolment = False
        self._connection_state = "offline"

    def start(self) -> None:
        # Like KioskCore: "offline" until started, then "connecting" until the broker answers.
        self.started += 1
        if not self._needs_enrolment and self._connection_state == "offline":
            self._connection_state = "connecting"

    def stop(self) -> None:
        self.stopped += 1

    def record(self, event_type: str, data: dict[str, Any]) -> str:
        self.records.append((event_type, dict(data)))
        return f"evt-{len(self.records):04d}"

    def set_listener(self, listener: Callable[[dict[str, Any]], None] | None) -> None:
        self.listener = listener

    # --- test helpers ------------------------------------------------------------------------

    def emit_from_thread(self, event: dict[str, Any]) -> None:
        """Deliver ``event`` to the listener from a background thread, as paho would."""
        if event.get("event") == "config":
            self._config = event["config"]
        elif event.get("event") == "retired":
            self._config = None
        elif event.get("event") == "disconnected":
            self._connection_state = "offline"
        elif event.get("event") == "connected":
            self._connection_state = "online"
        listener = self.listener
        if listener is None:
            return
        thread = threading.Thread(target=listener, args=(event,), daemon=True)
        thread.start()
        thread.join()


def contact(cid: str, approval_id: str, name: str, relation: str) -> dict[str, Any]:
    """A contact entry of the config "data"."""
    return {
        "id": cid,
        "approval_id": approval_id,
        "display_name": name,
        "relation": relation,
        "photo_url": None,
    }


def config(
    residents: list[tuple[str, str, list[dict[str, Any]]]], revision: int = 1
) -> dict[str, Any]:
    """A config "data" for residents given as (id, first name, contacts)."""
    return {
        "revision": revision,
        "tablet": {"id": "tab-001", "name": "Salon du 2e"},
        "home": {"id": "home-1", "name": "EHPAD Les Tilleuls", "timezone": "Europe/Paris"},
        "residents": [
            {
                "id": rid,
                "first_name": first_name,
                "kind": "senior",
                "language": "fr",
                "contacts": contacts,
            }
            for rid, first_name, contacts in residents
        ],
    }


# Here, not in tests.ui.driver: bench.kiosk_start uses it without the driver's test imports.
SIX_CONTACTS = [
    contact("c1", "ap-1", "Marie Dupont", "Fille"),
    contact("c2", "ap-2", "Jean-Pierre Martin", "Fils"),
    contact("c3", "ap-3", "Lucie", "Petite-fille"),
    contact("c4", "ap-4", "Thomas Bernard", "Petit-fils"),
    contact("c5", "ap-5", "Françoise Petit", "Sœur"),
    contact("c6", "ap-6", "Dr Moreau", "Médecin"),
]
