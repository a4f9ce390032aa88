"""One call's audio processing chain, on 10 ms frames of 48 kHz mono int16.

::

    relative's audio ──► playout buffer ──► speech boost ─► gain ─► limiter ──┬──► speaker
    (aiortc, any rate)    (20–120 ms)       (if set)       (volume            │
                                                            + resident boost) │ reference
    microphone ──► Speex linear ─┬─► WebRTC APM: echo canceller ◄─────────────┘
                   canceller     │    noise suppression ───────┐ double talk
                                 │                             ├─ crossfade ─► gain ─► the call
                                 └─► high-pass, noise ─────────┘
                                     suppression (gentle path)

:meth:`AudioChain.tick` does one 10 ms step: it takes the next frame of the relative's voice
for the speaker and processes one frame of the microphone against it. Whoever owns the clock
calls it: the duplex device's callback on a real tablet, the synthetic microphone's pacing in
tests and ``--headless``. What the speaker plays is the echo canceller's reference — after the
equaliser and the limiter, because that is what the microphone hears back.

In double talk (the resident speaks over the relative) the chain sends Speex's linear output
instead of AEC3's, whose suppressor would cut into the resident's voice
(:mod:`kiosk.audio.doubletalk`).

When PipeWire already cancels echo (``deploy/kiosk/``), the chain keeps noise suppression and
gain but does not cancel a second time (``cancel_echo=False``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import pywebrtc_audio

from kiosk.audio import FRAME_MS, FRAME_SAMPLES, RATE, speex
from kiosk.audio.doubletalk import DoubleTalkMixer
from kiosk.audio.dsp import (
    Framer,
    Limiter,
    Pcm,
    Resampler,
    SpeechBoost,
    db_to_gain,
    gain_to_db,
    to_float,
    to_pcm,
)
from kiosk.audio.hearing import HearingProfile
from kiosk.audio.speex import LinearEchoFilter

# The relative's voice waits this much before it plays (absorbs the network's and the decoder's
# 20 ms frames against the device's 10 ms clock) and never more than MAX_PLAYOUT_MS.
PLAYOUT_PREFILL_MS = 20
MAX_PLAYOUT_MS = 120
# Processed microphone frames waiting for the call's track (the track takes 20 ms at a time).
MAX_OUTGOING_MS = 200
# The tablet's volume (0..1, staff screen) as a gain: 1 is 0 dB, 0.5 is -12 dB, 0 is silence.
VOLUME_RANGE_DB = 24.0
# Noise suppression level of the WebRTC module: 1 is "moderate" (12 dB), gentle on speech.
NS_LEVEL = 1
# The automatic gain never adds more than this to the microphone.
AGC_MAX_GAIN_DB = 20.0
# ... and never lifts what it takes for noise (the room, what is left of the echo) above this.
AGC_MAX_NOISE_DBFS = -60.0
# While the relative speaks and the canceller removed at least this much of what the microphone
# heard, what is left is residual echo, not the resident: the automatic gain must not learn
# from it (it would turn the echo back up).
ECHO_DOMINANT_DB = 10.0
SILENT_DBFS = -60.0


def volume_gain(volume: float) -> float:
    """The tablet's volume setting (0..1) as a linear gain."""
    volume = min(1.0, max(0.0, volume))
    if volume <= 0.0:
        return 0.0
    return db_to_gain((volume - 1.0) * VOLUME_RANGE_DB)


@dataclass
class AudioChainStats:
    """What the chain did (counters only; no audio is ever kept)."""

    frames: int = 0  # 10 ms steps: microphone frames processed
    far_frames: int = 0  # 10 ms frames of the relative's voice played
    underruns: int = 0  # steps with no voice ready while the relative's audio was flowing
    dropped: int = 0  # frames of the relative's voice dropped to keep the delay low
    cpu_s: float = 0.0  # thread CPU time spent processing
    limited_frames: int = 0  # speaker frames the limiter had to turn down
    double_talk_frames: int = 0  # microphone frames sent (partly) from the gentle path

    def as_dict(self) -> dict[str, Any]:
        audio_s = self.frames * FRAME_MS / 1000
        return {
            "frames": self.frames,
            "far_frames": self.far_frames,
            "underruns": self.underruns,
            "dropped": self.dropped,
            "limited_frames": self.limited_frames,
            "double_talk_frames": self.double_talk_frames,
            "cpu_s": round(self.cpu_s, 4),
            "cpu_per_audio_s": round(self.cpu_s / audio_s, 4) if audio_s else None,
        }


def _level_db(frame: Pcm) -> float:
    power = float(np.mean(np.square(frame, dtype=np.float64))) / (32768.0 * 32768.0)
    return 10.0 * float(np.log10(max(power, 1e-12)))


class AudioChain:
    """The processing of one call; thread-safe (the relative's audio arrives on the call's loop,
    the device's clock ticks on its own thread)."""

    def __init__(
        self,
        *,
        profile: HearingProfile | None = None,
        volume: float = 1.0,
        cancel_echo: bool = True,
        stream_delay_ms: int = 0,
        linear_stage: bool = True,
        double_talk: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self.cancel_echo = cancel_echo
        # Speex's linear canceller first, when there is one (kiosk/audio/speex.py): AEC3 then
        # has less echo to suppress and keeps more of the resident in double talk.
        self._linear: LinearEchoFilter | None = None
        if cancel_echo and linear_stage and speex.available():
            self._linear = LinearEchoFilter(RATE, FRAME_SAMPLES)
        self._processor = pywebrtc_audio.AudioProcessor(
            sample_rate=RATE,
            num_channels=1,
            echo_cancellation=cancel_echo,
            noise_suppression=True,
            high_pass_filter=True,
            ns_level=NS_LEVEL,
            stream_delay_ms=stream_delay_ms,
        )
        # The gentle path for double talk: Speex's output through the same high-pass and noise
        # suppression, without AEC3's suppressor (kiosk/audio/doubletalk.py).
        self._gentle: Any = None
        self._double_talk: DoubleTalkMixer | None = None
        if self._linear is not None and double_talk:
            self._gentle = pywebrtc_audio.AudioProcessor(
                sample_rate=RATE,
                num_channels=1,
                echo_cancellation=False,
                noise_suppression=True,
                high_pass_filter=True,
                ns_level=NS_LEVEL,
            )
            self._double_talk = DoubleTalkMixer()
        # Automatic gain after the canceller, as its own stage: it brings a resident who speaks
        # softly or far from the tablet up to a steady level, guided by the noise suppressor's
        # speech probability (so it does not pump up the room's noise).
        self._agc = pywebrtc_audio.GainController(
            sample_rate=RATE,
            num_channels=1,
            max_gain_db=AGC_MAX_GAIN_DB,
            max_output_noise_level_dbfs=AGC_MAX_NOISE_DBFS,
        )
        self._far_resampler = Resampler(RATE)
        self._playout = Framer(FRAME_SAMPLES)
        self._playing = False
        self._far_started = False
        self._outgoing: deque[Pcm] = deque(maxlen=MAX_OUTGOING_MS // FRAME_MS)
        self._limiter = Limiter(RATE)
        self._speech_boost: SpeechBoost | None = None
        self._volume = volume
        self.profile = HearingProfile()
        self._gain = 1.0
        self.stats = AudioChainStats()
        self.set_profile(profile or HearingProfile())

    # -- settings (any thread) -------------------------------------------------------------------

    def set_profile(self, profile: HearingProfile) -> None:
        with self._lock:
            if profile.speech_boost and self._speech_boost is None:
                self._speech_boost = SpeechBoost(RATE)
            elif not profile.speech_boost:
                self._speech_boost = None
            self.profile = profile
            self._gain = volume_gain(self._volume) * db_to_gain(profile.boost_db)

    def set_volume(self, volume: float) -> None:
        with self._lock:
            self._volume = volume
            self._gain = volume_gain(volume) * db_to_gain(self.profile.boost_db)

    def set_stream_delay(self, delay_ms: int) -> None:
        """The device's round trip (output + input latency), a hint for the echo canceller."""
        with self._lock:
            self._processor.stream_delay_ms = max(0, int(delay_ms))

    @property
    def gain_db(self) -> float:
        """The speaker's gain over the relative's voice (volume and boost), in dB."""
        return round(gain_to_db(self._gain), 2)

    # -- the relative's voice --------------------------------------------------------------------

    def push_far(self, frame: av.AudioFrame) -> None:
        """A decoded frame of the relative's audio (any rate, layout and length)."""
        started = time.thread_time()
        samples = self._far_resampler.frame(frame)
        self.push_far_pcm(samples, started)

    def push_far_pcm(self, samples: Pcm, started: float | None = None) -> None:
        """The relative's audio as 48 kHz mono int16 (the bench feeds it this way)."""
        started = time.thread_time() if started is None else started
        with self._lock:
            self._far_started = True
            self._playout.push(samples)
            limit = MAX_PLAYOUT_MS * RATE // 1000
            while len(self._playout) > limit:
                self._playout.pop()
                self.stats.dropped += 1
            self.stats.cpu_s += time.thread_time() - started

    def _next_far(self) -> Pcm | None:
        if not self._playing:
            if len(self._playout) < PLAYOUT_PREFILL_MS * RATE // 1000:
                return None
            self._playing = True
        frame = self._playout.pop()
        if frame is None:
            self._playing = False  # ran dry: wait for the prefill again
            if self._far_started:
                self.stats.underruns += 1
        return frame

    # -- one 10 ms step --------------------------------------------------------------------------

    def tick(self, microphone: Pcm) -> Pcm:
        """Process one 10 ms microphone frame; returns the 10 ms frame for the speaker."""
        started = time.thread_time()
        with self._lock:
            far = self._next_far()
            if far is None:
                speaker = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            else:
                samples = to_float(far)
                if self._speech_boost is not None:
                    samples = self._speech_boost.process(samples)
                samples = self._limiter.process(samples * np.float32(self._gain))
                if self._limiter.reduction_db > 0.1:
                    self.stats.limited_frames += 1
                speaker = to_pcm(samples)
                self.stats.far_frames += 1
            near = self._near(microphone.reshape(-1), speaker)[1]
            self._outgoing.append(near)
            self.stats.frames += 1
            self.stats.cpu_s += time.thread_time() - started
        return speaker

    def process_near(self, microphone: Pcm, speaker: Pcm) -> tuple[Pcm, Pcm]:
        """The microphone side alone, against a given speaker frame: the canceller's output
        (echo cancelled, noise suppressed) and the chain's (after the automatic gain). The
        bench measures the first: the gain stage would scale the residual echo with the voice."""
        started = time.thread_time()
        with self._lock:
            result = self._near(microphone.reshape(-1), speaker.reshape(-1))
            self.stats.frames += 1
            self.stats.cpu_s += time.thread_time() - started
        return result

    def _near(self, microphone: Pcm, speaker: Pcm) -> tuple[Pcm, Pcm]:
        """Cancellers and noise suppression, then the automatic gain (lock held)."""
        heard = microphone
        residual = microphone
        if self._linear is not None:
            residual = self._linear.process(microphone, speaker)
        cleaned = np.asarray(self._processor.process(residual, speaker), dtype=np.int16)
        speech = self._processor.speech_probability
        if self._double_talk is not None:
            gentle = np.asarray(self._gentle.process(residual), dtype=np.int16).reshape(-1)
            cleaned = self._double_talk.process(cleaned.reshape(-1), gentle, residual, heard)
            if self._double_talk.weight > 0.0:
                self.stats.double_talk_frames += 1
        echo_only = (
            self.cancel_echo
            and _level_db(speaker) > SILENT_DBFS
            and _level_db(cleaned) < _level_db(heard) - ECHO_DOMINANT_DB
        )
        if echo_only:
            speech = 0.0
        near = np.asarray(self._agc.process(cleaned, speech), dtype=np.int16)
        return cleaned.reshape(-1), near.reshape(-1)

    def pop_outgoing(self) -> Pcm | None:
        """The oldest processed microphone frame not yet sent, if any."""
        with self._lock:
            return self._outgoing.popleft() if self._outgoing else None

    def outgoing_frames(self) -> int:
        with self._lock:
            return len(self._outgoing)

    def stats_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.stats.as_dict(),
                "echo_cancel": "app" if self.cancel_echo else "system",
                "linear_stage": self._linear is not None,
                "double_talk": self._double_talk is not None,
                "gain_db": self.gain_db,
                "boost_db": self.profile.boost_db,
                "speech_boost": self.profile.speech_boost,
            }
