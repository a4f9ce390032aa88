"""Plain data for the screens, computed from the tablet's configuration without any window.

The screens feed these dicts to their widgets as they are; everything a screen shows is decided
here, where it is tested without Kivy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from kiosk import policy as call_policy
from kiosk.i18n import _


class ContactTile(TypedDict):
    """One big photo tile on a resident's home screen."""

    approval_id: str
    contact_id: str
    resident_id: str
    name: str
    relation: str
    initials: str
    photo: str  # local path of the cached photo, "" when there is none (initials are shown)


class ResidentChoice(TypedDict):
    """One resident in the "who is using the tablet" picker."""

    resident_id: str
    name: str
    kind: str
    initials: str


def initials(name: str) -> str:
    """Up to two capital initials of a name ("Marie-Claire Dupont" -> "MD")."""
    words = [w for w in name.replace("-", " ").split() if w]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][0].upper()
    return (words[0][0] + words[-1][0]).upper()


def residents(config: dict[str, Any] | None) -> list[ResidentChoice]:
    """The residents the tablet serves, in the order the backend sent them."""
    if not config:
        return []
    return [
        ResidentChoice(
            resident_id=str(r["id"]),
            name=str(r.get("first_name", "")),
            kind=str(r.get("kind", "senior")),
            initials=initials(str(r.get("first_name", ""))),
        )
        for r in config.get("residents", [])
    ]


def contact_tiles(
    config: dict[str, Any] | None,
    resident_id: str | None = None,
    photo_paths: dict[str, str] | None = None,
) -> list[ContactTile]:
    """The approved contacts of one resident (or of every resident when ``resident_id`` is None).

    ``photo_paths`` maps a contact id to its cached photo file; contacts without one get a
    placeholder with their initials.
    """
    if not config:
        return []
    photo_paths = photo_paths or {}
    tiles: list[ContactTile] = []
    seen: set[str] = set()
    for resident in config.get("residents", []):
        rid = str(resident["id"])
        if resident_id is not None and rid != resident_id:
            continue
        for contact in resident.get("contacts", []):
            approval_id = str(contact["approval_id"])
            if approval_id in seen:
                continue
            seen.add(approval_id)
            name = str(contact.get("display_name", ""))
            tiles.append(
                ContactTile(
                    approval_id=approval_id,
                    contact_id=str(contact["id"]),
                    resident_id=rid,
                    name=name,
                    relation=str(contact.get("relation", "")),
                    initials=initials(name),
                    photo=photo_paths.get(str(contact["id"]), ""),
                )
            )
    return tiles


# --- who is using the tablet, and what each tile can do now ----------------------------------


# A tablet-wide night, unless the config says otherwise: dim screen, calm sentence, no ring.
DEFAULT_NIGHT = {"start": "21:00", "end": "08:00"}
DEFAULT_TIMEZONE = "Europe/Paris"


class HomeTile(ContactTile):
    """A contact tile with what it can do now.

    ``availability``: "available" (a tap calls), "later" (outside the allowed hours or quiet:
    greyed, a clock, ``when`` = "Demain à 14 h") or "offline" (the tablet has no network: a tap
    gives a calm sentence). ``when`` is "" unless "later".
    """

    availability: str
    when: str


class HomeSection(TypedDict):
    """One resident's part of the home screen."""

    resident_id: str
    name: str
    kind: str
    tiles: list[HomeTile]


class PickerChoice(TypedDict):
    """One resident on the "who is using the tablet" screen."""

    resident_id: str
    name: str
    kind: str
    initials: str
    photo: str
    needs_pin: bool


def home_timezone(config: dict[str, Any] | None) -> str:
    """The home's IANA time zone name (the policies' wall clock)."""
    name = str(((config or {}).get("home") or {}).get("timezone") or DEFAULT_TIMEZONE)
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return DEFAULT_TIMEZONE
    return name


def _time_text(moment: datetime) -> str:
    # Same msgids as the call screens' sentences: "14 h", "14 h 30".
    if moment.minute == 0:
        return _("{hour}:00").format(hour=moment.hour)
    return _("{hour}:{minute}").format(hour=moment.hour, minute=f"{moment.minute:02d}")


_ON_WEEKDAY = (
    "on Monday at {time}",
    "on Tuesday at {time}",
    "on Wednesday at {time}",
    "on Thursday at {time}",
    "on Friday at {time}",
    "on Saturday at {time}",
    "on Sunday at {time}",
)


def when_text(moment: datetime, *, now: datetime, timezone: str) -> str:
    """ "Demain à 14 h", "Aujourd'hui à 9 h 30", "Lundi à 14 h": a tile's next slot, capitalised."""
    tz = ZoneInfo(timezone)
    local = moment.astimezone(tz)
    days = (local.date() - now.astimezone(tz).date()).days
    at = _time_text(local)
    if days <= 0:
        text = _("today at {time}").format(time=at)
    elif days == 1:
        text = _("tomorrow at {time}").format(time=at)
    else:
        text = _(_ON_WEEKDAY[local.weekday()]).format(time=at)
    return text[:1].upper() + text[1:]


def tile_availability(
    contact_policy: dict[str, Any] | None, *, now: datetime, timezone: str, online: bool
) -> tuple[str, str]:
    """``(availability, when)`` of one contact at ``now`` (see :class:`HomeTile`)."""
    decision = call_policy.evaluate(contact_policy, now, timezone)
    if decision.allowed or decision.reason == "daily_limit":
        # The day's count is the call engine's business: the tile says "you may try".
        return ("available" if online else "offline"), ""
    if decision.next_allowed is None:
        return "later", _("Not now")
    return "later", when_text(decision.next_allowed, now=now, timezone=timezone)


def home_sections(
    config: dict[str, Any] | None,
    resident_ids: list[str] | None,
    photo_paths: dict[str, str] | None = None,
    *,
    now: datetime,
    online: bool,
) -> list[HomeSection]:
    """The home of ``resident_ids`` (every resident when None), each tile with its state."""
    if not config:
        return []
    timezone = home_timezone(config)
    policies = {
        str(c["approval_id"]): c.get("policy")
        for r in config.get("residents", [])
        for c in r.get("contacts", [])
    }
    sections: list[HomeSection] = []
    for resident in residents(config):
        rid = resident["resident_id"]
        if resident_ids is not None and rid not in resident_ids:
            continue
        tiles: list[HomeTile] = []
        for tile in contact_tiles(config, rid, photo_paths):
            availability, when = tile_availability(
                policies.get(tile["approval_id"]), now=now, timezone=timezone, online=online
            )
            tiles.append(HomeTile(**tile, availability=availability, when=when))
        sections.append(
            HomeSection(resident_id=rid, name=resident["name"], kind=resident["kind"], tiles=tiles)
        )
    return sections


def night_window(config: dict[str, Any] | None) -> dict[str, str]:
    """The tablet-wide night (``kiosk.night`` in the config, else 21:00-08:00)."""
    night = ((config or {}).get("kiosk") or {}).get("night")
    if isinstance(night, dict) and night.get("start") and night.get("end"):
        return {"start": str(night["start"]), "end": str(night["end"])}
    return dict(DEFAULT_NIGHT)


def is_night(config: dict[str, Any] | None, resident_ids: list[str] | None, now: datetime) -> bool:
    """Quiet time on the tablet: its night window, or every shown contact in quiet hours."""
    timezone = home_timezone(config)
    try:
        if call_policy.quiet_now({"quiet_hours": night_window(config)}, now, timezone):
            return True
    except call_policy.PolicyError:
        pass  # a night window nobody can read: the residents' own quiet hours still count
    quiet: list[bool] = []
    for resident in (config or {}).get("residents", []):
        if resident_ids is not None and str(resident["id"]) not in resident_ids:
            continue
        for contact in resident.get("contacts", []):
            try:
                quiet.append(call_policy.quiet_now(contact.get("policy") or {}, now, timezone))
            except call_policy.PolicyError:
                quiet.append(False)
    return bool(quiet) and all(quiet)


def night_part(now: datetime) -> str:
    """Which calm sentence the night line says at ``now`` (the home's local time).

    "evening" from 17 h (calls resume tomorrow), "night" after midnight until 5 h (it is night,
    the calls resume this morning: "it is still early" at 00:30 would tell someone awake that
    the morning has come), "morning" from 5 h to noon (the night or a quiet time ends later
    today), "day" in the afternoon (a quiet time, a nap): "we will call tomorrow" is only true
    in the evening.
    """
    if now.hour >= 17:
        return "evening"
    if now.hour < 5:
        return "night"
    return "morning" if now.hour < 12 else "day"


def idle_return_seconds(config: dict[str, Any] | None, default: float) -> float:
    """Seconds without a touch before the picker comes back (``kiosk.idle_return_s``)."""
    value = ((config or {}).get("kiosk") or {}).get("idle_return_s")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


def picker_choices(
    config: dict[str, Any] | None, photo_paths: dict[str, str] | None = None
) -> list[PickerChoice]:
    """The residents on the picker; ``photo_paths`` maps a resident id to a cached photo."""
    photo_paths = photo_paths or {}
    return [
        PickerChoice(
            resident_id=r["resident_id"],
            name=r["name"],
            kind=r["kind"],
            initials=r["initials"],
            photo=photo_paths.get(r["resident_id"], ""),
            needs_pin=r["kind"] == "youth",
        )
        for r in residents(config)
    ]


def resident_entry(config: dict[str, Any] | None, resident_id: str) -> dict[str, Any] | None:
    """The raw config entry of one resident (with ``pin_hash`` for a youth), or None."""
    for resident in (config or {}).get("residents", []):
        if str(resident.get("id")) == resident_id:
            return dict(resident)
    return None


def _mark_strings() -> None:  # pragma: no cover - only for catalogue extraction
    _("on Monday at {time}"), _("on Tuesday at {time}"), _("on Wednesday at {time}")
    _("on Thursday at {time}"), _("on Friday at {time}"), _("on Saturday at {time}")
    _("on Sunday at {time}")
