"""The residents' hearing on the tablet: the staff screen's panel and the in-call volume buttons.

Created by :class:`screens.staff.StaffFlow` with the app. It keeps the hearing settings in the
kiosk's data folder (:mod:`kiosk.audio.hearing`), fills the staff screen's hearing panel and its
audio state (who cancels echo, and the microphone and speaker where the core could not tell:
:func:`kiosk.audio.devices.probe`, run off the main thread because it may ask PipeWire), and
turns the in-call "+" and "−" into steps of the live call's boost (:mod:`kiosk.audio.live`),
which the resident's next call keeps.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kivy.clock import Clock

from kiosk.audio import hearing, live
from kiosk.audio.hearing import BOOST_LEVELS, HearingProfile

log = logging.getLogger(__name__)

LEVEL_REFRESH_S = 1.0  # the call's audio may open a moment after the in-call screen shows


def hearing_rows(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One plain dict per resident of the configuration, with their hearing setting."""
    profiles = hearing.profiles()
    rows = []
    for resident in (config or {}).get("residents") or []:
        resident_id = str(resident.get("id") or "")
        if not resident_id:
            continue
        name = " ".join(
            part for part in (resident.get("first_name"), resident.get("last_name")) if part
        )
        profile = profiles.get(resident_id)
        rows.append(
            {
                "resident_id": resident_id,
                "name": name or resident_id,
                "boost_db": profile.boost_db,
                "speech_boost": profile.speech_boost,
                "announce": profile.announce,
            }
        )
    return rows


class HearingFlow:
    """Answers the hearing panel's and the in-call volume buttons' events."""

    def __init__(self, app: Any, staff_screen: Any, core: Any) -> None:
        self.app = app
        self.staff_screen = staff_screen
        data_dir = getattr(getattr(core, "settings", None), "data_dir", None)
        if data_dir is not None:
            hearing.use_data_dir(data_dir)
        staff_screen.bind(on_hearing_changed=self._on_hearing_changed)
        self.incall = getattr(app, "incall_screen", None)
        self._refresh_event: Any = None
        if self.incall is not None:
            self.incall.volume_levels = BOOST_LEVELS
            self.incall.bind(
                on_volume_requested=self._on_volume_requested,
                on_pre_enter=lambda *_a: self._start_refresh(),
                on_leave=lambda *_a: self._stop_refresh(),
            )

    # --- the staff screen ---------------------------------------------------------------------

    def show(self, config: dict[str, Any] | None) -> None:
        """Fill the staff screen's hearing panel and check the audio devices."""
        try:
            self.staff_screen.hearing_rows = hearing_rows(config)
        except OSError:
            log.exception("could not read the hearing settings")
            self.staff_screen.hearing_rows = []
        self.staff_screen.showing_hearing = False
        threading.Thread(target=self._probe, name="liens-audio-probe", daemon=True).start()

    def _probe(self) -> None:
        from kiosk.audio.devices import probe

        try:
            state = probe()
        except Exception:
            log.exception("could not check the audio devices")
            return
        Clock.schedule_once(lambda _dt: self._show_devices(state), 0)

    def _show_devices(self, state: Any) -> None:
        screen = self.staff_screen
        # The core's answer (ALSA's device list) stands; PortAudio's fills in what it could not
        # check (no /proc/asound, e.g. a container or another system).
        if screen.microphone is None:
            screen.microphone = state.microphone
        if screen.speaker is None:
            screen.speaker = state.speaker
        screen.echo_cancel = "system" if state.system_echo_cancel else "app"

    def _on_hearing_changed(
        self, _screen: Any, resident_id: str, boost_db: float, speech_boost: bool, announce: bool
    ) -> None:
        profile = HearingProfile(boost_db=boost_db, speech_boost=speech_boost, announce=announce)
        try:
            hearing.profiles().set(resident_id, profile)
        except (OSError, ValueError):
            log.exception("could not keep the hearing setting of %s", resident_id)
        current = live.current()
        if current is not None and current.resident_id == resident_id:
            current.chain.set_profile(profile)  # a call in progress hears it at once

    def tablet_volume_changed(self, volume: float) -> None:
        """The staff screen's volume slider moved: a call in progress follows at once (the
        next calls read it from the saved preferences)."""
        current = live.current()
        if current is not None:
            current.chain.set_volume(volume)

    # --- the in-call buttons ------------------------------------------------------------------

    def _on_volume_requested(self, screen: Any, step: int) -> None:
        profile = live.change_boost(int(step))
        if profile is not None:
            screen.volume_level = profile.level

    def _refresh_level(self, *_args: Any) -> None:
        level = live.level()
        if self.incall is not None:
            self.incall.volume_level = level if level is not None else 0

    def _start_refresh(self) -> None:
        self._refresh_level()
        self._stop_refresh()
        self._refresh_event = Clock.schedule_interval(self._refresh_level, LEVEL_REFRESH_S)

    def _stop_refresh(self) -> None:
        if self._refresh_event is not None:
            self._refresh_event.cancel()
            self._refresh_event = None
