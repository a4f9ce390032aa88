"""The staff screen: what a member of staff changes on the tablet, and what they check.

Reached only through the staff gesture and a staff PIN (``screens.staff.StaffFlow``). Shows the
version and the connection (online or not, server, tablet name), whether a microphone and a
speaker were found, and offers: back to the residents, the tablet's language, volume and
brightness, enrol again (after a confirmation) and leave the kiosk. It speaks the tablet's
language, whatever the resident's.

"Residents' hearing" opens a panel with one row per resident of the tablet: their voice boost
(− and +, 0 to +12 dB), the clearer voice (speech boost, docs/audio.md) and the spoken
announcement of who is calling (``kiosk.speech``); each change goes up
as ``on_hearing_changed`` and the flow keeps it in the tablet's local preferences. The screen
also says who cancels echo: the tablet itself, or PipeWire's canceller (deploy/kiosk/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivymd.uix.boxlayout import MDBoxLayout
from kivymd.uix.screen import MDScreen

from kiosk.i18n import _

KV_FILE = Path(__file__).with_name("staff.kv")


def connection_sentence(state: str) -> str:
    """The connection state as staff read it."""
    return {
        "online": _("Online"),
        "connecting": _("Connecting…"),
        "offline": _("Offline"),
        "idle": _("Offline"),
        "not_enrolled": _("Not enrolled"),
    }.get(state, _("Offline"))


def echo_sentence(where: str) -> str:
    """Who cancels the echo of calls on this tablet."""
    return {
        "system": _("by PipeWire"),
        "app": _("by the tablet"),
    }.get(where, _("not checked"))


def boost_sentence(boost_db: float) -> str:
    """A resident's voice boost as staff read it."""
    if boost_db <= 0:
        return _("normal")
    return _("+{db} dB").format(db=round(boost_db))


class HearingRow(MDBoxLayout):
    """One resident's hearing setting on the staff screen (fed a plain dict by the screen)."""

    resident_id = StringProperty("")
    name = StringProperty("")
    boost_db = NumericProperty(0)
    speech_boost = BooleanProperty(False)
    announce = BooleanProperty(False)
    boost_text = StringProperty("")
    speech_text = StringProperty("")
    announce_text = StringProperty("")
    screen: Any = None

    def on_kv_post(self, base_widget: Any) -> None:
        self.bind(
            boost_db=self.refresh_texts,
            speech_boost=self.refresh_texts,
            announce=self.refresh_texts,
        )
        self.refresh_texts()

    def refresh_texts(self, *_args: Any) -> None:
        self.boost_text = boost_sentence(self.boost_db)
        self.speech_text = _("Clearer voice: yes") if self.speech_boost else _("Clearer voice: no")
        self.announce_text = _("Say who calls: yes") if self.announce else _("Say who calls: no")

    def step(self, steps: int) -> None:
        if self.screen is not None:
            self.screen.hearing_step(self.resident_id, steps)

    def toggle(self, setting: str = "speech_boost") -> None:
        if self.screen is not None:
            self.screen.hearing_toggle(self.resident_id, setting)


class HearingPanel(MDBoxLayout):
    """The residents' hearing, over the whole screen: while shown, nothing behind it reacts."""

    def on_touch_down(self, touch: Any) -> bool:
        if self.opacity and self.collide_point(*touch.pos):
            super().on_touch_down(touch)
            return True
        return False

    def on_touch_up(self, touch: Any) -> bool:
        if self.opacity and self.collide_point(*touch.pos):
            super().on_touch_up(touch)
            return True
        return bool(super().on_touch_up(touch))


def device_sentence(found: bool | None) -> str:
    """A microphone's or speaker's state: found, not found, or not checked on this system."""
    if found is None:
        return _("not checked")
    return _("found") if found else _("not found")


class ConfirmPanel(MDBoxLayout):
    """The re-enrolment question, over the whole screen: while shown, nothing behind it reacts."""

    def on_touch_down(self, touch: Any) -> bool:
        if self.opacity and self.collide_point(*touch.pos):
            super().on_touch_down(touch)
            return True
        return False

    def on_touch_up(self, touch: Any) -> bool:
        if self.opacity and self.collide_point(*touch.pos):
            super().on_touch_up(touch)
            return True
        return bool(super().on_touch_up(touch))


class StaffScreen(MDScreen):
    """Settings and state of the tablet, for staff; every action goes up as an event."""

    __events__ = (
        "on_back_requested",
        "on_language_chosen",
        "on_volume_chosen",
        "on_brightness_chosen",
        "on_reenrol_confirmed",
        "on_leave_requested",
        "on_hearing_changed",
    )

    language_code = StringProperty("fr")
    volume = NumericProperty(0.8)
    brightness = NumericProperty(1.0)
    app_version = StringProperty("")
    connection_state = StringProperty("offline")
    server_url = StringProperty("")
    tablet_name = StringProperty("")
    microphone: Any = BooleanProperty(None, allownone=True)
    speaker: Any = BooleanProperty(None, allownone=True)
    confirming_reenrol = BooleanProperty(False)
    # Who cancels echo: "app", "system" (PipeWire), or "" when not checked.
    echo_cancel = StringProperty("")
    # One dict per resident: resident_id, name, boost_db, speech_boost, announce.
    hearing_rows = ListProperty([])
    showing_hearing = BooleanProperty(False)
    echo_text = StringProperty("")

    # Texts set from Python, re-translated by refresh_texts().
    connection_text = StringProperty("")
    microphone_text = StringProperty("")
    speaker_text = StringProperty("")
    devices_missing = BooleanProperty(False)

    def on_kv_post(self, base_widget: Any) -> None:
        self.refresh_texts()
        self.bind(
            connection_state=self.refresh_texts,
            microphone=self.refresh_texts,
            speaker=self.refresh_texts,
            echo_cancel=self.refresh_texts,
            hearing_rows=self._fill_hearing,
        )
        self._fill_hearing()

    def refresh_texts(self, *_args: Any) -> None:
        self.connection_text = connection_sentence(self.connection_state)
        self.microphone_text = device_sentence(self.microphone)
        self.speaker_text = device_sentence(self.speaker)
        self.devices_missing = self.microphone is False or self.speaker is False
        self.echo_text = echo_sentence(self.echo_cancel)
        for row in self.hearing_widgets():
            row.refresh_texts()

    # --- residents' hearing -------------------------------------------------------------------

    def hearing_widgets(self) -> list[HearingRow]:
        box = self.ids.get("hearing_list")
        return [w for w in reversed(box.children) if isinstance(w, HearingRow)] if box else []

    def _fill_hearing(self, *_args: Any) -> None:
        box = self.ids.get("hearing_list")
        if box is None:
            return
        rows = self.hearing_widgets()
        if [r.resident_id for r in rows] == [str(e["resident_id"]) for e in self.hearing_rows]:
            # The same residents: update the rows in place (a row may be under a finger).
            for row, entry in zip(rows, self.hearing_rows, strict=True):
                row.boost_db = float(entry["boost_db"])
                row.speech_boost = bool(entry["speech_boost"])
                row.announce = bool(entry.get("announce"))
            return
        box.clear_widgets()
        for entry in self.hearing_rows:
            row = HearingRow(
                resident_id=str(entry["resident_id"]),
                name=str(entry["name"]),
                boost_db=float(entry["boost_db"]),
                speech_boost=bool(entry["speech_boost"]),
                announce=bool(entry.get("announce")),
            )
            row.screen = self
            box.add_widget(row)

    def open_hearing(self) -> None:
        self.showing_hearing = True

    def close_hearing(self) -> None:
        self.showing_hearing = False

    def _change_hearing(self, resident_id: str, **change: Any) -> None:
        rows = []
        for entry in self.hearing_rows:
            if entry["resident_id"] == resident_id:
                entry = {**entry, **change}
                self.dispatch(
                    "on_hearing_changed",
                    resident_id,
                    entry["boost_db"],
                    entry["speech_boost"],
                    bool(entry.get("announce")),
                )
            rows.append(entry)
        self.hearing_rows = rows

    def hearing_step(self, resident_id: str, steps: int) -> None:
        from kiosk.audio.hearing import BOOST_STEP_DB, clamp_boost

        for entry in self.hearing_rows:
            if entry["resident_id"] == resident_id:
                boost = clamp_boost(float(entry["boost_db"]) + steps * BOOST_STEP_DB)
                if boost != entry["boost_db"]:
                    self._change_hearing(resident_id, boost_db=boost)
                return

    def hearing_toggle(self, resident_id: str, setting: str = "speech_boost") -> None:
        """Turn ``setting`` ("speech_boost" or "announce") of ``resident_id`` on or off."""
        if setting not in ("speech_boost", "announce"):
            raise ValueError(f"no hearing setting {setting!r}")
        for entry in self.hearing_rows:
            if entry["resident_id"] == resident_id:
                self._change_hearing(resident_id, **{setting: not entry.get(setting)})
                return

    def choose_language(self, code: str) -> None:
        self.language_code = code
        self.dispatch("on_language_chosen", code)

    def slider_moved(self, what: str, value: float) -> None:
        """A slider moved (the flow applies it at once and stores it a moment later)."""
        value = round(min(1.0, max(0.0, value)), 2)
        if what == "volume":
            if value != self.volume:
                self.volume = value
                self.dispatch("on_volume_chosen", value)
        elif value != self.brightness:
            self.brightness = value
            self.dispatch("on_brightness_chosen", value)

    def ask_reenrol(self) -> None:
        self.confirming_reenrol = True

    def cancel_reenrol(self) -> None:
        self.confirming_reenrol = False

    def confirm_reenrol(self) -> None:
        self.confirming_reenrol = False
        self.dispatch("on_reenrol_confirmed")

    # Default handlers: the staff flow binds to these events.
    def on_back_requested(self) -> None: ...
    def on_language_chosen(self, code: str) -> None: ...
    def on_volume_chosen(self, value: float) -> None: ...
    def on_brightness_chosen(self, value: float) -> None: ...
    def on_reenrol_confirmed(self) -> None: ...
    def on_leave_requested(self) -> None: ...
    def on_hearing_changed(
        self, resident_id: str, boost_db: float, speech_boost: bool, announce: bool
    ) -> None: ...
