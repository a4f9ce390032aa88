"""A tablet night window that covers now, or lies far from it, whatever the time of the run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def night_window(night: bool, timezone: str = "Europe/Paris") -> dict[str, str]:
    """``kiosk.night`` for a config: from 2 h ago to 2 h ahead (``night``), or 10 h ahead.

    A night that covers an evening run ends at 08:00, as a real one does: the tiles then say
    "Demain à 8 h" under "Il est tard, on appellera demain" (kiosk.viewmodel.night_part),
    not "Aujourd'hui à 21 h" under it.
    """
    now = datetime.now(ZoneInfo(timezone))
    start = now - timedelta(hours=2) if night else now + timedelta(hours=10)
    end = now + timedelta(hours=2) if night else now + timedelta(hours=11)
    if night and (now.hour >= 17 or now.hour < 5):
        # Evening ("on appellera demain": "Demain à 8 h") or after midnight ("on appellera ce
        # matin": "Aujourd'hui à 8 h").
        return {"start": start.strftime("%H:%M"), "end": "08:00"}
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def at_night(config: dict[str, Any], night: bool = True) -> dict[str, Any]:
    """``config`` with a tablet night and every contact's quiet hours around now (or not).

    At night the home shows the night line and the shade, and every tile is "later" (greyed,
    the clock badge, "Demain à …"): the look the night tests must read.
    """
    window = night_window(night)
    residents = [
        {
            **resident,
            "contacts": [
                {**contact, "policy": {**(contact.get("policy") or {}), "quiet_hours": window}}
                for contact in resident.get("contacts", [])
            ],
        }
        for resident in config.get("residents", [])
    ]
    return {
        **config,
        "kiosk": {**(config.get("kiosk") or {}), "night": window},
        "residents": residents,
    }
