"""The enrolment screen: a staff member types the enrolment code on a big numeric keypad.

The screen only collects the server address and the code; it dispatches
``on_enrol_requested(server_url, code)`` and the app runs the enrolment off the main thread,
then sets ``busy`` and ``error_reason`` back on the screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.properties import BooleanProperty, StringProperty
from kivymd.uix.screen import MDScreen

from kiosk.i18n import _

KV_FILE = Path(__file__).with_suffix(".kv")

MAX_CODE_DIGITS = 12


def error_sentence(reason: str) -> str:
    """What the staff member reads for an ``EnrolmentError.reason``, and what to do next."""
    sentences = {
        "invalid_code": _("This code is not recognised. Check it and type it again."),
        "expired_code": _(
            "This code has expired. Ask for a new enrolment code on the staff dashboard."
        ),
        "used_code": _(
            "This code has already been used. Ask for a new enrolment code on the staff dashboard."
        ),
        "unreachable": _(
            "The server does not answer. Check the server address and the network, then try again."
        ),
        "server_error": _("The server ran into a problem. Try again in a few minutes."),
        "missing_code": _("Type the enrolment code first."),
        "missing_server": _("Type the server address first."),
    }
    return sentences.get(reason, _("The enrolment did not succeed. Try again."))


def code_display(code: str) -> str:
    """The code as typed, in groups of three digits, or dashes when nothing is typed yet."""
    if not code:
        return "– – – – – –"
    return " ".join(code[i : i + 3] for i in range(0, len(code), 3))


class EnrolmentScreen(MDScreen):
    """Server address and enrolment code, entered with one finger."""

    __events__ = ("on_enrol_requested",)

    server_url = StringProperty("")
    code = StringProperty("")
    code_text = StringProperty("")
    busy = BooleanProperty(False)
    error_reason = StringProperty("")
    message = StringProperty("")

    def on_kv_post(self, base_widget: Any) -> None:
        self.code_text = code_display(self.code)
        self._update_message()

    def on_code(self, _instance: Any, code: str) -> None:
        self.code_text = code_display(code)

    def on_error_reason(self, *_args: Any) -> None:
        self._update_message()

    def on_busy(self, *_args: Any) -> None:
        self._update_message()

    def refresh_texts(self) -> None:
        """Re-translate the texts set from Python (after a language change)."""
        self._update_message()

    def _update_message(self) -> None:
        if self.busy:
            self.message = _("Enrolling the tablet…")
        elif self.error_reason:
            self.message = error_sentence(self.error_reason)
        else:
            self.message = ""

    # --- keypad ------------------------------------------------------------------------------

    def press_key(self, key: str) -> None:
        """A keypad key: a digit, "erase" or "validate"."""
        if self.busy:
            return
        if key == "erase":
            self.code = self.code[:-1]
        elif key == "validate":
            self.validate()
            return
        elif key.isdigit() and len(key) == 1 and len(self.code) < MAX_CODE_DIGITS:
            self.code += key
        self.error_reason = ""

    def validate(self) -> None:
        """Ask the app to enrol with the address and code on screen."""
        server_url = self.server_url.strip()
        if not server_url:
            self.error_reason = "missing_server"
        elif not self.code:
            self.error_reason = "missing_code"
        else:
            self.error_reason = ""
            self.dispatch("on_enrol_requested", server_url, self.code)

    def on_enrol_requested(self, server_url: str, code: str) -> None:
        """Default handler: the app binds to this event."""
