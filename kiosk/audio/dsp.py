"""Signal processing of the tablet's audio path, on float32 frames in [-1, 1] or int16 frames.

Pure numpy/scipy (and PyAV's resampler): each class keeps its own state between frames, so a
stream processed in 10 ms pieces sounds the same as if it were processed whole.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from scipy.signal import sosfilt

from kiosk.audio import FRAME_SAMPLES, RATE

Samples = npt.NDArray[np.float32]
Pcm = npt.NDArray[np.int16]

# The speech boost for hearing loss: +6 dB centred on 2 kHz, two octaves wide (1 to 4 kHz), where
# consonants live and where age-related hearing loss starts.
SPEECH_BOOST_HZ = 2000.0
SPEECH_BOOST_DB = 6.0
SPEECH_BOOST_OCTAVES = 2.0
# The limiter's ceiling: nothing leaves the chain louder than -1 dBFS.
LIMITER_CEILING_DB = -1.0
LIMITER_LOOKAHEAD_MS = 1.0
LIMITER_RELEASE_MS = 80.0


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    return 20.0 * math.log10(max(gain, 1e-9))


def to_float(pcm: Pcm) -> Samples:
    return (pcm.astype(np.float32) / 32768.0).reshape(-1)


def to_pcm(samples: Samples) -> Pcm:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def peaking_sos(rate: int, centre_hz: float, gain_db: float, octaves: float) -> npt.NDArray[Any]:
    """One peaking biquad (RBJ's cookbook) as a second-order section for ``sosfilt``."""
    a_gain = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * centre_hz / rate
    alpha = math.sin(w0) * math.sinh(math.log(2.0) / 2.0 * octaves * w0 / math.sin(w0))
    b0, b1, b2 = 1.0 + alpha * a_gain, -2.0 * math.cos(w0), 1.0 - alpha * a_gain
    a0, a1, a2 = 1.0 + alpha / a_gain, -2.0 * math.cos(w0), 1.0 - alpha / a_gain
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


class SpeechBoost:
    """The speech-band equaliser: a gentle +6 dB over 1–4 kHz, flat elsewhere."""

    def __init__(self, rate: int = RATE, gain_db: float = SPEECH_BOOST_DB) -> None:
        self.sos = peaking_sos(rate, SPEECH_BOOST_HZ, gain_db, SPEECH_BOOST_OCTAVES)
        self._state = np.zeros((self.sos.shape[0], 2))

    def process(self, samples: Samples) -> Samples:
        out, self._state = sosfilt(self.sos, samples, zi=self._state)
        return np.asarray(out, dtype=np.float32)

    def response_db(self, frequency_hz: float, rate: int = RATE) -> float:
        """The filter's gain at ``frequency_hz`` (for tests and docs)."""
        from scipy.signal import sosfreqz

        _, h = sosfreqz(self.sos, worN=[frequency_hz], fs=rate)
        return gain_to_db(float(abs(h[0])))


class Limiter:
    """A peak limiter with a 1 ms look-ahead: the output never exceeds the ceiling, and the gain
    comes back smoothly (80 ms) after a loud peak.

    The gain is computed per 1 ms block as the smallest gain the block and the next one need,
    then interpolated linearly sample by sample; both ends of each ramp are at most the gain the
    block needs, so no sample is let through too loud. Delay: 1 ms.
    """

    def __init__(
        self,
        rate: int = RATE,
        ceiling_db: float = LIMITER_CEILING_DB,
        lookahead_ms: float = LIMITER_LOOKAHEAD_MS,
        release_ms: float = LIMITER_RELEASE_MS,
    ) -> None:
        self.ceiling = db_to_gain(ceiling_db)
        self.block = max(1, int(rate * lookahead_ms / 1000))
        # Per block, the gain may rise by this much (linear), reaching 1 from 0 in release_ms.
        self._rise = self.block / max(1.0, rate * release_ms / 1000)
        self._pending = np.zeros(self.block, dtype=np.float32)  # the look-ahead delay line
        self._pending_need = 1.0
        self._gain = 1.0
        self.reduction_db = 0.0  # the deepest gain reduction of the last frame (for the stats)

    def process(self, samples: Samples) -> Samples:
        n = samples.shape[0]
        if n % self.block:
            raise ValueError(f"frames must be a multiple of {self.block} samples")
        blocks = samples.reshape(-1, self.block)
        peaks = np.abs(blocks).max(axis=1)
        needs = np.minimum(1.0, self.ceiling / np.maximum(peaks, 1e-9))
        # Output block k is input block k-1 (the pending one), limited by what it and block k need.
        delayed = np.vstack([self._pending[None, :], blocks[:-1]])
        delayed_need = np.concatenate([[self._pending_need], needs[:-1]])
        out = np.empty_like(delayed)
        ramp = np.arange(1, self.block + 1, dtype=np.float32) / self.block
        lowest = 1.0
        for k in range(delayed.shape[0]):
            target = min(delayed_need[k], needs[k], self._gain + self._rise)
            start = min(self._gain, delayed_need[k])
            out[k] = delayed[k] * (start + (target - start) * ramp)
            self._gain = target
            lowest = min(lowest, start, target)
        self._pending = blocks[-1].copy()
        self._pending_need = float(needs[-1])
        self.reduction_db = -gain_to_db(lowest)
        # The ramps cannot overshoot; the clip only guards against rounding.
        return np.clip(out.reshape(-1), -self.ceiling, self.ceiling)


class Framer:
    """Cuts a stream of int16 samples of any lengths into frames of exactly ``size`` samples."""

    def __init__(self, size: int = FRAME_SAMPLES) -> None:
        self.size = size
        self._chunks: deque[Pcm] = deque()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, samples: Pcm) -> None:
        if samples.size:
            self._chunks.append(samples.reshape(-1))
            self._count += samples.size

    def pop(self) -> Pcm | None:
        """The next whole frame, or ``None`` when fewer than ``size`` samples wait."""
        if self._count < self.size:
            return None
        parts: list[Pcm] = []
        wanted = self.size
        while wanted:
            head = self._chunks[0]
            if head.size <= wanted:
                parts.append(self._chunks.popleft())
                wanted -= head.size
            else:
                parts.append(head[:wanted])
                self._chunks[0] = head[wanted:]
                wanted = 0
        self._count -= self.size
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def clear(self) -> None:
        self._chunks.clear()
        self._count = 0


class Resampler:
    """Any audio (an ``av.AudioFrame``, or mono int16 at ``rate``) to mono int16 at ``to_rate``,
    streaming (FFmpeg's swresample keeps its filter state between calls)."""

    def __init__(self, to_rate: int = RATE) -> None:
        self.to_rate = to_rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
        self._pts = 0

    def frame(self, frame: av.AudioFrame) -> Pcm:
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not out:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(out).astype(np.int16, copy=False)

    def pcm(self, samples: Pcm, rate: int) -> Pcm:
        if rate == self.to_rate:
            return samples.reshape(-1)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._pts
        self._pts += samples.size
        return self.frame(frame)


def rms_dbfs(samples: Samples) -> float:
    """The level of ``samples`` in dB relative to full scale (a full-scale sine is -3 dBFS)."""
    power = float(np.mean(np.square(samples, dtype=np.float64))) if samples.size else 0.0
    return 10.0 * math.log10(max(power, 1e-12))


__all__ = [
    "FRAME_SAMPLES",
    "Framer",
    "Limiter",
    "Resampler",
    "SpeechBoost",
    "db_to_gain",
    "gain_to_db",
    "peaking_sos",
    "rms_dbfs",
    "to_float",
    "to_pcm",
]
