"""Sentences the relative reads about a call, in the page's language."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from backend.i18n import translations
from kiosk.calls.model import EndReason

FR_DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def when(moment: datetime, timezone: str, language: str, now: datetime) -> str:
    """'aujourd'hui à 14 h', 'demain à 9 h 30', 'lundi à 14 h' (or the English equivalents)."""
    tz = ZoneInfo(timezone)
    local, today = moment.astimezone(tz), now.astimezone(tz).date()
    t = translations(language)
    if local.date() == today:
        day = t.gettext("today")
    elif local.date() == today + timedelta(days=1):
        day = t.gettext("tomorrow")
    else:
        day = (FR_DAYS if language == "fr" else EN_DAYS)[local.weekday()]
    if language == "fr":
        clock = f"{local.hour} h" if local.minute == 0 else f"{local.hour} h {local.minute:02d}"
    else:
        hour12 = local.hour % 12 or 12
        suffix = "am" if local.hour < 12 else "pm"
        clock = f"{hour12}:{local.minute:02d} {suffix}"
    return t.gettext("%(day)s at %(time)s") % {"day": day, "time": clock}


def unavailable(
    *,
    name: str,
    reason: str,
    detail: str,
    next_allowed: datetime | None,
    timezone: str,
    language: str,
    now: datetime,
) -> str:
    t = translations(language)
    if reason == "offline":
        return t.gettext("%(name)s's tablet is not connected right now.") % {"name": name}
    if reason == EndReason.BUSY:
        return t.gettext("%(name)s is already in a call. Try again in a moment.") % {"name": name}
    if detail == "not_approved":
        return t.gettext("You cannot call %(name)s.") % {"name": name}
    if detail == "daily_limit" and next_allowed is None:
        return t.gettext("%(name)s cannot take more calls today.") % {"name": name}
    if next_allowed is not None:
        return t.gettext("%(name)s is not available now; next slot %(when)s.") % {
            "name": name,
            "when": when(next_allowed, timezone, language, now),
        }
    return t.gettext("%(name)s is not available now.") % {"name": name}
