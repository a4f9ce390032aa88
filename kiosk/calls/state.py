"""The plain data a call exposes to the core and the screens; no aiortc import here.

The call's vocabulary is :mod:`kiosk.calls.model` (shared with the backend).

Kept apart from :mod:`kiosk.calls.engine` so that importing the core (and the screens) does not
load aiortc and FFmpeg until a call engine is actually started.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

# The call's vocabulary (states, reasons, directions, signals) is kiosk/calls/model.py's.
from kiosk.calls.model import CallState, Direction, EndReason

RgbFrame = npt.NDArray[np.uint8]


class CallRefused(Exception):
    """The tablet will not start this call; ``reason`` is an end reason, for a calm sentence.

    ``reason`` is ``policy`` (unknown approval, outside the allowed hours, calls per day reached),
    ``busy`` (a call is already on) or ``network`` (the tablet is not connected).
    ``next_allowed`` (aware, UTC) is the next moment the policy allows a call, when known.
    """

    def __init__(self, reason: EndReason, next_allowed: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.next_allowed = next_allowed


@dataclass(frozen=True)
class CallInfo:
    """A snapshot of the current call, as the screens show it."""

    call_id: str
    approval_id: str
    resident_id: str
    contact_name: str
    direction: Direction
    state: CallState
    reason: EndReason | None
    auto_answer_s: int | None
    started_at: datetime
    connected_at: datetime | None


@dataclass
class CallStats:
    """What the media of one call did (counters only: no content is ever kept).

    ``first_frame_at`` is a Unix time; ``first_frame_after_answer_s`` counts from the moment the
    call was answered (the tablet's accept, or the relative's ``accepted``), and
    ``first_frame_after_offer_s`` from the SDP offer's arrival.
    """

    call_id: str | None = None
    frames_decoded: int = 0
    audio_frames: int = 0
    audio_samples: int = 0
    audio_packets: int = 0
    audio_packets_lost: int = 0
    video_packets: int = 0
    video_packets_lost: int = 0
    frames_sent: int = 0
    first_frame_at: float | None = None
    first_frame_after_answer_s: float | None = None
    first_frame_after_offer_s: float | None = None
    width: int | None = None
    height: int | None = None
    # When each step of the set-up happened (Unix times, see docs/calls.md "Where the time goes").
    timeline: dict[str, float] = field(default_factory=dict)
    # The capture profile the engine chose for this call, and its changes (docs/calls.md).
    video_profile: dict[str, Any] | None = None
    profile_changes: int = 0
    # The tablet's audio path (docs/audio.md): 10 ms microphone frames through the echo
    # canceller, and the chain's counters (far-end frames played, CPU, echo canceller in use).
    audio_processed: int = 0
    audio_path: dict[str, Any] | None = None

    def mark(self, step: str) -> None:
        """Note when ``step`` first happened (later repeats keep the first time)."""
        self.timeline.setdefault(step, time.time())

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "frames_decoded": self.frames_decoded,
            "audio_frames": self.audio_frames,
            "audio_samples": self.audio_samples,
            "audio_packets": self.audio_packets,
            "audio_packets_lost": self.audio_packets_lost,
            "video_packets": self.video_packets,
            "video_packets_lost": self.video_packets_lost,
            "frames_sent": self.frames_sent,
            "first_frame_at": self.first_frame_at,
            "first_frame_after_answer_s": self.first_frame_after_answer_s,
            "first_frame_after_offer_s": self.first_frame_after_offer_s,
            "width": self.width,
            "height": self.height,
            "timeline": dict(self.timeline),
            "video_profile": dict(self.video_profile) if self.video_profile else None,
            "profile_changes": self.profile_changes,
            "audio_processed": self.audio_processed,
            "audio_path": dict(self.audio_path) if self.audio_path else None,
        }


@dataclass
class LatestFrame:
    """A one-slot holder of the latest RGB frame, written by the call's thread, read by the UI.

    ``get()`` returns ``(sequence, frame)``; the sequence increases with every ``put``, so a
    reader blits only when it changed. Frames are never queued: a slow reader skips frames.
    The array handed to ``put`` must not be modified afterwards (it is shared, not copied).
    """

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _seq: int = 0
    _frame: RgbFrame | None = field(default=None, repr=False)

    def put(self, frame: RgbFrame) -> None:
        with self._lock:
            self._seq += 1
            self._frame = frame

    def get(self) -> tuple[int, RgbFrame] | None:
        with self._lock:
            if self._frame is None:
                return None
            return self._seq, self._frame

    def clear(self) -> None:
        """Drop the frame (the sequence keeps increasing, so readers see the change)."""
        with self._lock:
            self._seq += 1
            self._frame = None
