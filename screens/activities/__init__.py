"""Activities: what a resident does on the tablet between calls, each one a plug-in.

An activity is a subpackage of ``screens.activities`` whose ``__init__`` defines ``ACTIVITY``,
an :class:`Activity`: its key, its name (an English msgid, translated when shown), a Material
Design icon, the audiences it is for ("senior", "youth"), a factory for its screen (an
:class:`screens.activities.base.ActivityScreen`) and the kv file beside it. :func:`discover`
finds every subpackage with ``pkgutil``: adding an activity touches no other file.

:class:`screens.activities.host.ActivityHost` puts the open resident's activities on the home
screen, opens them, and records ``activity_started`` / ``activity_stopped`` in the outbox.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

AUDIENCES = frozenset({"senior", "youth"})


def lazy_screen(module: str, name: str) -> Callable[..., Any]:
    """A screen factory that imports ``module`` when the screen is first built: the registry
    reads every activity's ``__init__`` before the home's first frame, the screens come after."""

    def build(**kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(**kwargs)

    return build


@dataclass(frozen=True)
class Activity:
    """What the registry knows of one activity."""

    key: str  # "photos"; the screen is named "activity_photos", events carry it
    name: str  # English msgid ("Family photos"); the tile shows it translated
    icon: str  # a Material Design icon name ("image-multiple")
    audiences: frozenset[str]
    screen: Callable[..., Any]  # screen(name=...) -> ActivityScreen
    kv_file: Path | None = None
    order: int = 100  # position on the home's row, smallest first

    def __post_init__(self) -> None:
        unknown = set(self.audiences) - AUDIENCES
        if unknown or not self.audiences:
            raise ValueError(f"activity {self.key}: audiences must be among {sorted(AUDIENCES)}")

    @property
    def screen_name(self) -> str:
        return f"activity_{self.key}"


def discover(package: str = __name__) -> list[Activity]:
    """Every activity under ``package``, in ``order``; a broken one is logged and left out."""
    module = importlib.import_module(package)
    found: dict[str, Activity] = {}
    for info in pkgutil.iter_modules(module.__path__):
        if not info.ispkg:
            continue  # base.py, host.py: not activities
        try:
            sub = importlib.import_module(f"{package}.{info.name}")
            activity = sub.ACTIVITY
        except Exception:
            # One broken plug-in must not take the resident's home (and calls) with it.
            log.exception("activity %s could not be loaded", info.name)
            continue
        if not isinstance(activity, Activity) or activity.key in found:
            log.error("activity %s: no ACTIVITY, or a key already used", info.name)
            continue
        found[activity.key] = activity
    return sorted(found.values(), key=lambda a: (a.order, a.key))


def for_audience(activities: list[Activity], audience: str) -> list[Activity]:
    """The activities a resident of ``audience`` ("senior"/"youth") sees on their home."""
    return [a for a in activities if audience in a.audiences]


def tiles(activities: list[Activity], translate: Callable[[str], str]) -> list[dict[str, str]]:
    """The home's activity tiles as plain dicts: ``key``, ``name`` (translated), ``icon``."""
    return [{"key": a.key, "name": translate(a.name), "icon": a.icon} for a in activities]


__all__ = ["AUDIENCES", "Activity", "discover", "for_audience", "tiles"]
