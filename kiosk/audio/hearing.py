"""Each resident's hearing setting, kept on the tablet (``hearing.json`` in its data folder).

Many residents are hard of hearing. Staff set, per resident, on the tablet's staff screen:

* a **volume boost** (0 to +12 dB in 3 dB steps) over the tablet's volume; the resident changes
  it too with the big − and + buttons of the in-call screen, and the tablet remembers it for
  their next call;
* a **speech boost**: +6 dB over 1–4 kHz (:class:`kiosk.audio.dsp.SpeechBoost`), where
  consonants are and where hearing loss starts;
* **spoken announcements**: the tablet says who is calling ("Julie vous appelle") before its
  chime (:mod:`kiosk.speech`), for a resident who sees the screen poorly or is across the room.

A limiter after both keeps anything from clipping. The setting stays on the tablet: it is a
local preference like the tablet's language and volume, never sent to the server.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BOOST_STEP_DB = 3.0
MAX_BOOST_DB = 12.0
BOOST_LEVELS = int(MAX_BOOST_DB / BOOST_STEP_DB)  # the in-call level shows 0..BOOST_LEVELS
FILE_NAME = "hearing.json"


@dataclass(frozen=True)
class HearingProfile:
    """One resident's hearing setting."""

    boost_db: float = 0.0
    speech_boost: bool = False
    announce: bool = False  # say who is calling (kiosk.speech)

    @property
    def level(self) -> int:
        """The boost as a number of steps (0 to :data:`BOOST_LEVELS`), as the screens show it."""
        return round(self.boost_db / BOOST_STEP_DB)

    def stepped(self, steps: int) -> HearingProfile:
        """The profile with its boost moved by ``steps`` (clamped to 0..+12 dB)."""
        return replace(self, boost_db=clamp_boost(self.boost_db + steps * BOOST_STEP_DB))

    def to_json(self) -> dict[str, Any]:
        return {
            "boost_db": self.boost_db,
            "speech_boost": self.speech_boost,
            "announce": self.announce,
        }

    @classmethod
    def from_json(cls, obj: Any) -> HearingProfile:
        if not isinstance(obj, dict):
            return cls()
        try:
            boost = clamp_boost(float(obj.get("boost_db", 0.0)))
        except (TypeError, ValueError):
            boost = 0.0
        return cls(
            boost_db=boost,
            speech_boost=obj.get("speech_boost") is True,
            announce=obj.get("announce") is True,
        )


def clamp_boost(boost_db: float) -> float:
    """``boost_db`` on the 3 dB grid, within 0..+12 dB."""
    steps = round(min(MAX_BOOST_DB, max(0.0, boost_db)) / BOOST_STEP_DB)
    return steps * BOOST_STEP_DB


class HearingProfiles:
    """The hearing settings of the residents of this tablet, in one small JSON file.

    Written atomically (a temporary file, then a rename): a crash never leaves half a file, and
    a damaged file reads as "no setting" rather than stopping a call.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            obj = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("hearing settings in %s unreadable: defaults used", self.path)
            return {}
        return obj if isinstance(obj, dict) else {}

    def get(self, resident_id: str | None) -> HearingProfile:
        if not resident_id:
            return HearingProfile()
        with self._lock:
            return HearingProfile.from_json(self._read().get(resident_id))

    def all(self) -> dict[str, HearingProfile]:
        with self._lock:
            return {k: HearingProfile.from_json(v) for k, v in self._read().items()}

    def set(self, resident_id: str, profile: HearingProfile) -> None:
        if not resident_id:
            raise ValueError("a hearing setting belongs to a resident")
        with self._lock:
            data = self._read()
            data[resident_id] = profile.to_json()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, sort_keys=True))
            os.replace(tmp, self.path)


_profiles_lock = threading.Lock()
_profiles: HearingProfiles | None = None


def use_data_dir(data_dir: Path) -> HearingProfiles:
    """Keep the hearing settings in ``data_dir`` (the app calls it with the kiosk's data folder)."""
    global _profiles
    with _profiles_lock:
        if _profiles is None or _profiles.path.parent != Path(data_dir):
            _profiles = HearingProfiles(data_dir)
        return _profiles


def profiles() -> HearingProfiles:
    """This tablet's hearing settings (the kiosk's default data folder unless told otherwise)."""
    with _profiles_lock:
        current = _profiles
    if current is not None:
        return current
    from kiosk.settings import default_data_dir

    return use_data_dir(default_data_dir())


def tablet_volume() -> float:
    """The tablet's volume as staff set it on the staff screen (``preferences.json``, 0..1)."""
    from kiosk.settings import KioskSettings

    return KioskSettings(data_dir=profiles().path.parent).load_preferences().volume
