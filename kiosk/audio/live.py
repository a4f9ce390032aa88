"""The audio chain of the call in progress on this tablet, for the in-call volume buttons.

A tablet has one loudspeaker and one call at a time: the call's audio registers its chain here
when it starts and removes it when it stops. The in-call screen's − and + go through
:func:`change_boost`, which turns the resident's voice boost up or down at once and remembers it
in the resident's hearing setting for their next call.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiosk.audio import hearing
from kiosk.audio.hearing import HearingProfile

if TYPE_CHECKING:  # the chain loads scipy, PyAV and WebRTC: only when a call has audio
    from kiosk.audio.chain import AudioChain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveCall:
    chain: AudioChain
    resident_id: str


_lock = threading.Lock()
_live: LiveCall | None = None


def attach(chain: AudioChain, resident_id: str) -> None:
    global _live
    with _lock:
        _live = LiveCall(chain, resident_id)


def detach(chain: AudioChain) -> None:
    global _live
    with _lock:
        if _live is not None and _live.chain is chain:
            _live = None


def current() -> LiveCall | None:
    with _lock:
        return _live


def level() -> int | None:
    """The boost level (0..4) of the call in progress, ``None`` when no call has audio."""
    live = current()
    return live.chain.profile.level if live is not None else None


def change_boost(steps: int) -> HearingProfile | None:
    """Turn the call's voice up (``steps`` > 0) or down; remembered for the resident.

    Returns the new setting, or ``None`` when no call is in progress.
    """
    live = current()
    if live is None:
        return None
    profile = live.chain.profile.stepped(steps)
    live.chain.set_profile(profile)
    if live.resident_id:
        try:
            hearing.profiles().set(live.resident_id, profile)
        except OSError:
            log.exception("could not keep the resident's hearing setting")
    return profile
