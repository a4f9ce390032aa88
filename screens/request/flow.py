"""Routing of "Demander un contact": home -> relation -> confirmation -> home.

The app creates one ``RequestFlow``; it owns the two screens and is the only part of the flow
that talks to the core (``request_contact``). Screens only dispatch events up to it.
"""

from __future__ import annotations

import logging
from typing import Any

from kivy.clock import Clock

from screens.request.choose import RequestContactScreen
from screens.request.sent import RequestSentScreen

log = logging.getLogger(__name__)

SENT_SECONDS = 8.0  # the confirmation stays long enough to be read aloud, then home


class RequestFlow:
    """Adds the request screens to ``manager`` and answers the home screen's requests."""

    def __init__(
        self,
        core: Any,
        manager: Any,
        home_screen: Any,
        *,
        recorded: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.core = core
        self.manager = manager
        self.recorded = recorded if recorded is not None else []
        self._timer: Any = None
        self.choose_screen = RequestContactScreen(name="request_contact")
        self.choose_screen.bind(
            on_relation_chosen=self._on_relation_chosen,
            on_back_requested=lambda _screen: self.go_home(),
        )
        self.sent_screen = RequestSentScreen(name="request_sent")
        self.sent_screen.bind(on_back_requested=lambda _screen: self.go_home())
        manager.add_widget(self.choose_screen)
        manager.add_widget(self.sent_screen)
        home_screen.bind(on_request_contact=self._on_request_contact)

    def _on_request_contact(self, _home: Any, resident_id: str, resident_name: str) -> None:
        self._cancel_timer()
        self.choose_screen.resident_id = resident_id
        self.choose_screen.resident_name = resident_name
        self.manager.current = self.choose_screen.name

    def _on_relation_chosen(self, screen: RequestContactScreen, relation: str, who: str) -> None:
        data = {"resident_id": screen.resident_id, "who": who, "relation": relation}
        self.recorded.append(("contact_request", data))
        try:
            self.core.request_contact(screen.resident_id, who=who, relation=relation)
        except Exception:
            # A child never sees an error screen; without the outbox there is nothing to confirm.
            log.exception("could not record the contact request")
            self.go_home()
            return
        if self.manager.current == screen.name:
            self.manager.current = self.sent_screen.name
            self._timer = Clock.schedule_once(lambda _dt: self.go_home(), SENT_SECONDS)

    def go_home(self) -> None:
        self._cancel_timer()
        # Only from the request screens: a call that arrived meanwhile keeps its screen.
        if self.manager.current in (self.choose_screen.name, self.sent_screen.name):
            self.manager.current = "home"

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
