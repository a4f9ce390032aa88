"""Double talk: keep the resident's voice when they speak over the relative.

AEC3's non-linear suppressor removes what is left of the echo well, but while the resident and
the relative speak at once it also cuts into the resident's voice (a correlation of 0.86 with the
clean voice behind Speex, 0.74–0.78 alone, ``bench/echo.py``). Speex's linear canceller never
touches the resident (0.94) but leaves 13–18 dB of echo. So the chain runs both and, per 10 ms
frame, chooses:

- :class:`DoubleTalkDetector` — the resident is speaking when Speex's residual (the microphone
  minus its echo estimate) is louder than the echo estimate itself by :data:`THRESHOLD_DB`: a
  converged linear filter leaves 10–20 dB less than the echo, so a residual that loud is
  mostly someone in the room. A hangover of :data:`HANGOVER_FRAMES` bridges the gaps between
  syllables. It only decides once Speex has shown it converged (what it leaves, averaged over
  the frames with echo, under :data:`CONVERGED_DB`) and stops when that average rises over
  :data:`DIVERGED_DB`: at the start of a call and after the echo path changed (the tablet was
  moved), the residual is echo. It reads only the chain's own signals (microphone, speaker,
  Speex's output).
- :class:`DoubleTalkMixer` — crossfades, over :data:`RAMP_FRAMES` frames (no clicks), from AEC3's
  output to the *gentle* output (Speex's linear output through the same high-pass and noise
  suppression, delayed to line up with AEC3's sample for sample) while the detector says double
  talk, and back. A guard: when AEC3 removed more than :data:`VETO_DB` of what the gentle path
  carries, that is echo AEC3 is right to remove (Speex misadjusted, the echo path just changed):
  the mixer goes back to AEC3's output and ends the hangover.
"""

from __future__ import annotations

import numpy as np

from kiosk.audio import FRAME_SAMPLES
from kiosk.audio.dsp import Pcm

# The residual must be this much louder than Speex's echo estimate to count as the resident.
THRESHOLD_DB = 3.0
# Double talk lasts this many 10 ms frames after the last frame that showed it.
HANGOVER_FRAMES = 20
# Only once Speex's filter leaves this much less than the echo it estimates, on average over
# the frames with echo (at the start of a call, after the echo path changed, its residual is
# echo, not the resident), and until it leaves more than DIVERGED_DB (double talk itself raises
# the average a little: the resident's softer syllables count as leak), ...
CONVERGED_DB = -8.0
DIVERGED_DB = -3.0
# ... averaged with this weight per frame (about half a second),
LEAK_SMOOTHING = 0.02
# ... over frames whose echo estimate is above -60 dBFS.
_ECHO_POWER = 1e-6
# Frames the crossfade takes, each way.
RAMP_FRAMES = 2
# AEC3 removing more than this from the gentle path's frame means echo: keep AEC3's output.
VETO_DB = -15.0
# The WebRTC module's delay with AEC3 (15 ms at 48 kHz) minus its delay without it (7 ms):
# the gentle path waits this many samples to line up with AEC3's output (measured, and
# checked by tests/unit/test_audio.py).
AEC3_EXTRA_DELAY_SAMPLES = 384
# Frames quieter than this (power, full scale = 1) carry no decision.
_SILENT_POWER = 1e-9  # -90 dBFS


def _power(frame: np.ndarray) -> float:
    samples = np.asarray(frame, dtype=np.float64) / 32768.0
    return float(np.mean(np.square(samples)))


def _db_ratio(a: float, b: float) -> float:
    return 10.0 * float(np.log10((a + 1e-12) / (b + 1e-12)))


class DoubleTalkDetector:
    """Is the resident speaking? From Speex's residual against its echo estimate, per frame."""

    def __init__(
        self,
        threshold_db: float = THRESHOLD_DB,
        hangover_frames: int = HANGOVER_FRAMES,
        converged_db: float = CONVERGED_DB,
        diverged_db: float = DIVERGED_DB,
    ) -> None:
        self.threshold_db = threshold_db
        self.hangover_frames = hangover_frames
        self.converged_db = converged_db
        self.diverged_db = diverged_db
        self.converged = False
        self._hold = 0
        self.active = False
        # How much of the echo Speex typically leaves (dB, residual over echo estimate), over
        # the frames with echo and no sign of the resident; 0 until it has shown it converged.
        self.leak_db = 0.0

    def update(self, residual: Pcm, echo_estimate: np.ndarray) -> bool:
        """One frame: Speex's output and what it subtracted (microphone - output)."""
        residual_power = _power(residual)
        echo_power = _power(echo_estimate)
        ratio_db = _db_ratio(residual_power, echo_power)
        loud = residual_power > _SILENT_POWER and ratio_db > self.threshold_db
        if not loud and echo_power > _ECHO_POWER:
            self.leak_db += LEAK_SMOOTHING * (max(ratio_db, -40.0) - self.leak_db)
            if self.leak_db < self.converged_db:
                self.converged = True
            elif self.leak_db > self.diverged_db:
                self.converged = False
        if loud and self.converged:
            self._hold = self.hangover_frames
            self.active = True
        else:
            self.active = self._hold > 0
            self._hold = max(0, self._hold - 1)
        return self.active

    def release(self) -> None:
        """End double talk now (the mixer saw echo): no hangover."""
        self._hold = 0
        self.active = False


class DelayLine:
    """A fixed delay in samples, on frames of any length."""

    def __init__(self, samples: int) -> None:
        self._buffer = np.zeros(samples, dtype=np.int16)

    def process(self, frame: Pcm) -> Pcm:
        if self._buffer.size == 0:
            return frame
        joined = np.concatenate([self._buffer, np.asarray(frame, dtype=np.int16).reshape(-1)])
        self._buffer = joined[-self._buffer.size :]
        return joined[: frame.size]


class DoubleTalkMixer:
    """AEC3's output, or the gentle one in double talk, crossfaded (not thread-safe: the chain
    locks)."""

    def __init__(
        self,
        detector: DoubleTalkDetector | None = None,
        *,
        ramp_frames: int = RAMP_FRAMES,
        veto_db: float = VETO_DB,
        gentle_delay: int = AEC3_EXTRA_DELAY_SAMPLES,
        frame: int = FRAME_SAMPLES,
    ) -> None:
        self.detector = detector or DoubleTalkDetector()
        self.veto_db = veto_db
        self._step = 1.0 / max(1, ramp_frames)
        self._align = DelayLine(gentle_delay)
        # The detector looks at the input; the outputs come a frame or so later (AEC3's and the
        # noise suppressor's delay): its decision applies from the next frame.
        self._pending = False
        self._ramp = np.arange(1, frame + 1, dtype=np.float32) / np.float32(frame)
        self.weight = 0.0  # 0: AEC3's output, 1: the gentle path
        self.gentle_frames = 0  # frames with any of the gentle path in them

    def process(self, suppressed: Pcm, gentle: Pcm, residual: Pcm, microphone: Pcm) -> Pcm:
        """One frame: AEC3's output, the gentle path's (not yet aligned), Speex's residual and
        the microphone (for the detector). Returns the frame to send."""
        gentle = self._align.process(gentle)
        target = 1.0 if self._pending else 0.0
        self._pending = self.detector.update(
            residual, microphone.astype(np.int32) - residual.astype(np.int32)
        )
        if target > 0.0 and _db_ratio(_power(suppressed), _power(gentle)) < self.veto_db:
            target = 0.0
            self.detector.release()
            self._pending = False
        previous = self.weight
        if target > previous:
            self.weight = min(target, previous + self._step)
        else:
            self.weight = max(target, previous - self._step)
        if previous == 0.0 and self.weight == 0.0:
            return suppressed
        self.gentle_frames += 1
        if previous == 1.0 and self.weight == 1.0:
            return gentle
        w = np.float32(previous) + np.float32(self.weight - previous) * self._ramp
        mixed = (1.0 - w) * suppressed.astype(np.float32) + w * gentle.astype(np.float32)
        return np.clip(np.round(mixed), -32768, 32767).astype(np.int16)
