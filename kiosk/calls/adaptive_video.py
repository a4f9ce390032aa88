"""The call's outgoing video, fitted to the profile the engine chose, and re-fitted under load.

:class:`AdaptiveVideoTrack` sits between the camera (or the test pattern) and aiortc's sender:
it thins the frames to the profile's rate and scales them to its size, and it measures the
sender's time per frame — aiortc asks for the next frame only once it has encoded, packetised
and sent the last one, so the time between handing a frame over and the next ``recv()`` is the
encoder's time per frame, measured without reaching into aiortc. Every second it asks
:func:`kiosk.calls.video_profile.next_rung` whether to step down or up (docs/calls.md).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from kiosk.calls.video_profile import LADDER, Choice, VideoProfile, next_rung

log = logging.getLogger(__name__)

ProfileListener = Callable[[int, VideoProfile], None]

# A frame a little early still counts as on time (source timestamps jitter).
EARLY_TOLERANCE_S = 0.004


class AdaptiveVideoTrack(MediaStreamTrack):
    """``source`` thinned and scaled to the current rung of :data:`LADDER`."""

    kind = "video"

    def __init__(
        self,
        source: MediaStreamTrack,
        choice: Choice,
        *,
        adapt: bool = True,
        on_change: ProfileListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._source = source
        self.rung = choice.rung
        self.adapt = adapt
        self._on_change = on_change
        self._clock = clock
        self._changed_at = clock()
        self._checked_at = clock()
        self._returned_at: float | None = None
        self._busy: collections.deque[float] = collections.deque(maxlen=120)
        self._next_due: float | None = None
        self.frames_sent = 0
        self.changes = 0

    @property
    def profile(self) -> VideoProfile:
        return LADDER[self.rung]

    @property
    def frames_sent_by_source(self) -> int:
        return int(getattr(self._source, "frames_sent", 0))

    def set_rung(self, rung: int) -> None:
        """Move to ``rung`` now (the measurements so far belong to the old one)."""
        rung = max(0, min(rung, len(LADDER) - 1))
        if rung == self.rung:
            return
        old = self.profile
        self.rung = rung
        self.changes += 1
        self._busy.clear()
        self._changed_at = self._clock()
        log.info("video profile %s → %s", old.name, self.profile.name)
        if self._on_change is not None:
            try:
                self._on_change(rung, self.profile)
            except Exception:
                log.exception("video profile listener failed")

    async def recv(self) -> av.VideoFrame:
        now = self._clock()
        if self._returned_at is not None:
            self._busy.append(now - self._returned_at)
        if self.adapt and now - self._checked_at >= 1.0:
            self._checked_at = now
            self.set_rung(next_rung(self.rung, list(self._busy), now - self._changed_at))
        profile = self.profile
        interval = 1.0 / profile.fps
        while True:
            frame = await self._source.recv()
            if not isinstance(frame, av.VideoFrame):
                raise MediaStreamError
            at = (
                float(frame.pts * frame.time_base)
                if frame.pts is not None and frame.time_base is not None
                else self._clock()
            )
            if self._next_due is None or at >= self._next_due - EARLY_TOLERANCE_S:
                break  # on time; the others are thinned out
        # Keep the average rate; after a stall, start again from this frame.
        due = (self._next_due if self._next_due is not None else at) + interval
        self._next_due = due if due > at else at + interval
        if (frame.width, frame.height) != (profile.width, profile.height):
            scaled = frame.reformat(width=profile.width, height=profile.height)
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            frame = scaled
        self.frames_sent += 1
        self._returned_at = self._clock()
        return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()
