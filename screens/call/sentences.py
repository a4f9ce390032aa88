"""What the resident reads during a call, as full, calm sentences (no Kivy: tested windowless).

Every sentence names the relative and says what happens next; none is an error message.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from kiosk.calls.model import (
    CallState,
    CallWarning,
    Direction,
    EndReason,
    PinError,
    StaffEnd,
    Supervision,
)
from kiosk.i18n import _

# The engine's end reason, and the details of a tablet-side policy refusal
# (``kiosk.policy.Decision.reason``).
POLICY_REASONS = frozenset(
    {EndReason.POLICY, "quiet_hours", "outside_window", "daily_limit", "revoked"}
)
# What went wrong on the way: the call was cut, or could not go through.
FAILURES = (EndReason.NETWORK, EndReason.ERROR)


def outgoing_status(state: str, name: str) -> str:
    """The line under the relative's name while the tablet calls them."""
    if state == CallState.RINGING:
        return _("It is ringing at {name}'s…").format(name=name)
    return _("Calling…")


def calling_sentence(name: str) -> str:
    """What the tablet says aloud as it calls ``name`` (spoken announcements)."""
    return _("Calling {name}.").format(name=name)


def incoming_title(name: str) -> str:
    """The big line of the incoming call screen."""
    return _("{name} is calling you").format(name=name)


def countdown_text(seconds: int) -> str:
    """The automatic answer countdown ("" when there is none)."""
    if seconds < 0:
        return ""
    if seconds == 0:
        return _("Answering automatically…")
    return _("Automatic answer in {seconds} s").format(seconds=seconds)


def connecting_text(name: str) -> str:
    """Shown on the in-call screen until the relative's picture arrives."""
    return _("Connecting with {name}…").format(name=name)


def warning_text(warning: str | None) -> str:
    """The big line over the video when the call nears its maximum duration ("" otherwise)."""
    if warning == CallWarning.ONE_MINUTE:
        return _("One minute left")
    return ""


def supervise_title(name: str, direction: str) -> str:
    """The keypad's big line: why the call waits."""
    if direction == Direction.INCOMING:
        return _("{name} is calling. A member of staff must type their code to answer.").format(
            name=name
        )
    return _("To call {name}, a member of staff must type their code.").format(name=name)


def supervise_status(supervision: str, pin_error: str | None, attempts_left: int) -> str:
    """Under the typed dots: checking, or what went wrong with the last code."""
    if supervision == Supervision.CHECKING:
        return _("Checking the code…")
    if pin_error == PinError.WRONG:
        if attempts_left == 1:
            return _("This code is not right. One try left.")
        return _("This code is not right. {count} tries left.").format(count=attempts_left)
    if pin_error == PinError.NETWORK:
        return _("The code could not be checked. Type it again.")
    return _("A member of staff must type their code")


def ended_sentence(
    reason: str | None,
    name: str,
    *,
    direction: str,
    connected: bool,
    ended_by: str | None = None,
) -> str:
    """The sentence shown for a few seconds when a call ends, before the home screen."""
    over = _("The call is over.")
    if reason == EndReason.POLICY and ended_by == StaffEnd.STAFF:
        return _("The call was ended by the staff.")
    if reason == EndReason.POLICY and ended_by == StaffEnd.LIMIT:
        return _("The time for this call is over. You can call {name} again another time.").format(
            name=name
        )
    if connected:
        if reason in FAILURES:
            return _("The call was cut off. You can call {name} again.").format(name=name)
        return over
    if direction == Direction.INCOMING:
        if reason in (EndReason.CANCELLED, EndReason.MISSED):
            return _("{name} tried to call you.").format(name=name)
        return over
    if reason in (EndReason.DECLINED, EndReason.MISSED, EndReason.UNAVAILABLE):
        return _("{name} could not answer.").format(name=name)
    if reason == EndReason.BUSY:
        return _("{name} is already on a call. Try again a little later.").format(name=name)
    if reason in POLICY_REASONS:
        return _("This is not a time to call {name}. Try again later.").format(name=name)
    if reason in FAILURES:
        return _("The call could not go through. Try again in a moment.")
    return over


def refused_sentence(
    reason: str | None,
    name: str,
    next_allowed: datetime | None,
    *,
    now: datetime,
    timezone: tzinfo | None = None,
) -> str:
    """Why a call could not start (``CallRefused``) and, when known, when it can."""
    if reason == EndReason.BUSY:
        return _("A call is already under way. Try again in a moment.")
    if reason in POLICY_REASONS or reason is None:
        if next_allowed is not None:
            when = when_text(next_allowed, now=now, timezone=timezone)
            return _("This is not a time to call {name}. You can call again {when}.").format(
                name=name, when=when
            )
        return _("This is not a time to call {name}. Try again later.").format(name=name)
    return _("The call could not go through. Try again in a moment.")


_ON_WEEKDAY = (
    "on Monday at {time}",
    "on Tuesday at {time}",
    "on Wednesday at {time}",
    "on Thursday at {time}",
    "on Friday at {time}",
    "on Saturday at {time}",
    "on Sunday at {time}",
)


def _mark_weekday_strings() -> None:  # pragma: no cover - only for catalogue extraction
    _("on Monday at {time}"), _("on Tuesday at {time}"), _("on Wednesday at {time}")
    _("on Thursday at {time}"), _("on Friday at {time}"), _("on Saturday at {time}")
    _("on Sunday at {time}")


def time_text(moment: datetime) -> str:
    """A time of day as said aloud: "14 h", "14 h 30" in French."""
    if moment.minute == 0:
        return _("{hour}:00").format(hour=moment.hour)
    return _("{hour}:{minute}").format(hour=moment.hour, minute=f"{moment.minute:02d}")


def when_text(moment: datetime, *, now: datetime, timezone: tzinfo | None = None) -> str:
    """ "today at 14 h", "tomorrow at 9 h 30", "on Monday at 14 h", in the home's time zone."""
    local = moment.astimezone(timezone)
    today = now.astimezone(timezone).date()
    days = (local.date() - today).days
    at = time_text(local)
    if days <= 0:
        return _("today at {time}").format(time=at)
    if days == 1:
        return _("tomorrow at {time}").format(time=at)
    return _(_ON_WEEKDAY[local.weekday()]).format(time=at)
