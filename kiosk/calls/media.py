"""Local media sources and remote media sinks of a call.

Sources are either **synthetic** (tests, ``--headless``, benchmarks) or the tablet's **devices**
(camera through v4l2, microphone through ALSA), chosen by ``media = "synthetic" | "devices" |
"auto"``; ``auto`` uses each device that exists and falls back to the synthetic source with a log
line otherwise.

The synthetic video is a 640×480, 30 fps test pattern a UI test can recognise by its pixels:

* rows 0–319: eight vertical bars 80 px wide, left to right :data:`BAR_COLOURS` (white, yellow,
  cyan, green, magenta, red, blue, black);
* rows 320–479: a dark grey band (:data:`BAND_COLOUR`) in which an orange square
  (:data:`SQUARE_COLOUR`, 80×80, rows 352–431) moves 8 px per frame from left to right;
* rows 448–479: the frame counter, 16 cells of 40 px, most significant bit on the left, white for
  1 and black for 0.

After VP8 each colour comes back within a few units per channel; a test should allow ±40.
The synthetic audio is a 440 Hz sine at 48 kHz, mono, in 20 ms frames (960 samples).

Sinks: remote video goes to a :class:`~kiosk.calls.state.LatestFrame` (RGB ndarray, latest only);
remote audio is counted and handed to the call's audio path (:mod:`kiosk.calls.audio`): the
speaker and the echo canceller's reference. The microphone and the speaker are one duplex
stream opened there; the audio sent is always the output of the audio chain (docs/audio.md),
with the synthetic tone as its microphone when there is no device. No frame is ever stored
beyond the one-slot holders and the audio path's short playout buffer.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc import MediaStreamTrack, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError

from kiosk.calls.state import CallStats, LatestFrame, RgbFrame

if TYPE_CHECKING:
    from kiosk.calls.audio import CallAudio

log = logging.getLogger(__name__)

WIDTH = 640
HEIGHT = 480
FPS = 30
AUDIO_RATE = 48000
AUDIO_PTIME = 0.020
AUDIO_SAMPLES = int(AUDIO_RATE * AUDIO_PTIME)
TONE_HZ = 440.0

BAR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255),
    (255, 255, 0),
    (0, 255, 255),
    (0, 255, 0),
    (255, 0, 255),
    (255, 0, 0),
    (0, 0, 255),
    (0, 0, 0),
)
BAND_COLOUR = (40, 40, 40)
SQUARE_COLOUR = (255, 128, 0)
BARS_HEIGHT = 320
SQUARE_SIZE = 80
SQUARE_TOP = 352
SQUARE_STEP = 8
COUNTER_TOP = 448
COUNTER_BITS = 16

VIDEO_DEVICE = "/dev/video0"

MEDIA_MODES = ("synthetic", "devices", "auto")

AudioSink = Callable[[av.AudioFrame], None]


def _base_pattern() -> RgbFrame:
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    bar_width = WIDTH // len(BAR_COLOURS)
    for i, colour in enumerate(BAR_COLOURS):
        image[:BARS_HEIGHT, i * bar_width : (i + 1) * bar_width] = colour
    image[BARS_HEIGHT:] = BAND_COLOUR
    return image


def pattern_frame(index: int, base: RgbFrame | None = None) -> RgbFrame:
    """Frame ``index`` of the synthetic video (see the module's docstring for its layout)."""
    image = (base if base is not None else _base_pattern()).copy()
    span = WIDTH - SQUARE_SIZE
    x = (index * SQUARE_STEP) % span
    image[SQUARE_TOP : SQUARE_TOP + SQUARE_SIZE, x : x + SQUARE_SIZE] = SQUARE_COLOUR
    cell = WIDTH // COUNTER_BITS
    for bit in range(COUNTER_BITS):
        on = (index >> (COUNTER_BITS - 1 - bit)) & 1
        image[COUNTER_TOP:, bit * cell : (bit + 1) * cell] = 255 if on else 0
    return image


def to_rgb(frame: av.VideoFrame) -> RgbFrame:
    """A decoded frame as an RGB ndarray (height × width × 3, uint8)."""
    image: RgbFrame = frame.to_ndarray(format="rgb24")  # type: ignore[assignment]
    return image


class PatternVideoTrack(VideoStreamTrack):
    """The synthetic camera: the test pattern at 30 fps; each frame also goes to the self-view."""

    def __init__(self, self_view: LatestFrame | None = None) -> None:
        super().__init__()
        self._base = _base_pattern()
        self._index = 0
        self._self_view = self_view
        self.frames_sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = pattern_frame(self._index, self._base)
        self._index += 1
        if self._self_view is not None:
            self._self_view.put(image)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        self.frames_sent += 1
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """The synthetic microphone: a continuous 440 Hz sine, 48 kHz mono s16, 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency: float = TONE_HZ, amplitude: float = 0.2) -> None:
        super().__init__()
        self._step = 2 * math.pi * frequency / AUDIO_RATE
        self._amplitude = int(32767 * amplitude)
        self._sample = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            wait = self._start + self._sample / AUDIO_RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        n = np.arange(self._sample, self._sample + AUDIO_SAMPLES)
        samples = (self._amplitude * np.sin(self._step * n)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._sample
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._sample += AUDIO_SAMPLES
        return frame


class SelfViewTrack(MediaStreamTrack):
    """Relays a device's video track to the call and every other frame to the self-view."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, self_view: LatestFrame) -> None:
        super().__init__()
        self._source = source
        self._self_view = self_view
        self.frames_sent = 0

    async def recv(self) -> av.VideoFrame:
        frame = await self._source.recv()
        if not isinstance(frame, av.VideoFrame):
            raise MediaStreamError
        self.frames_sent += 1
        if self.frames_sent % 2:
            self._self_view.put(to_rgb(frame))
        return frame


@dataclass
class LocalMedia:
    """The tracks one call sends, and whatever must be stopped when it ends."""

    audio: MediaStreamTrack
    video: MediaStreamTrack
    description: str
    _players: list[Any] = field(default_factory=list)
    audio_path: CallAudio | None = None

    @property
    def frames_sent(self) -> int:
        return int(getattr(self.video, "frames_sent", 0))

    def play_audio(self, frame: av.AudioFrame) -> None:
        """The relative's decoded audio: to the speaker, and to the echo canceller."""
        if self.audio_path is not None:
            self.audio_path.play(frame)

    def stop(self) -> None:
        if self.audio_path is not None:
            self.audio_path.stop()
        for track in (self.audio, self.video):
            track.stop()
        for player in self._players:
            for track in (player.audio, player.video):
                if track is not None:
                    track.stop()
        self._players.clear()


def _open_camera() -> Any:
    from aiortc.contrib.media import MediaPlayer

    return MediaPlayer(
        VIDEO_DEVICE,
        format="v4l2",
        options={"video_size": f"{WIDTH}x{HEIGHT}", "framerate": str(FPS)},
    )


def open_local_media(mode: str, self_view: LatestFrame, resident_id: str = "") -> LocalMedia:
    """Open the call's sources (blocking: device opening can take a moment; use an executor).

    The audio is the resident's (``resident_id``: their hearing setting) audio path."""
    if mode not in MEDIA_MODES:
        raise ValueError(f"media must be one of {MEDIA_MODES}, not {mode!r}")
    players: list[Any] = []
    video: MediaStreamTrack | None = None
    used = []
    if mode != "synthetic":
        if mode == "devices" or Path(VIDEO_DEVICE).exists():
            try:
                camera = _open_camera()
            except Exception as exc:
                if mode == "devices":
                    raise
                log.info("no usable camera at %s (%s): synthetic video", VIDEO_DEVICE, exc)
            else:
                players.append(camera)
                video = SelfViewTrack(camera.video, self_view)
                used.append("camera")
        else:
            log.info("no camera at %s: synthetic video", VIDEO_DEVICE)
    if video is None:
        video = PatternVideoTrack(self_view)
        used.append("test pattern")
    # The microphone and the speaker: one duplex stream through the audio chain; with no
    # device, the 440 Hz tone is the chain's microphone.
    from kiosk.calls.audio import open_call_audio

    try:
        audio_path = open_call_audio(mode, ToneAudioTrack(), resident_id=resident_id)
    except Exception:
        for player in players:
            player.video.stop()
        raise
    if audio_path.device is None:
        used.append("440 Hz tone")
    used.append(f"audio: {audio_path.description}")
    return LocalMedia(
        audio=audio_path.track,
        video=video,
        description=", ".join(used),
        _players=players,
        audio_path=audio_path,
    )


async def consume_video(
    track: MediaStreamTrack,
    holder: LatestFrame,
    stats: CallStats,
    on_first_frame: Callable[[], None] | None = None,
) -> None:
    """Decode the remote video into ``holder`` until the track ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.VideoFrame):
            continue
        if stats.first_frame_at is None:
            # Decoded now (the same moment a browser's framesDecoded counts it), before the
            # conversion for the screen.
            stats.first_frame_at = time.time()
            if on_first_frame is not None:
                on_first_frame()
        # The RGB conversion is the only per-frame cost the UI needs; the frame is not kept.
        holder.put(to_rgb(frame))
        stats.frames_decoded += 1
        stats.width, stats.height = frame.width, frame.height


async def consume_audio(
    track: MediaStreamTrack, stats: CallStats, sink: AudioSink | None = None
) -> None:
    """Count the remote audio and hand each frame to ``sink`` (speaker playback hook)."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.AudioFrame):
            continue
        stats.audio_frames += 1
        stats.audio_samples += frame.samples
        if sink is not None:
            try:
                sink(frame)
            except Exception:
                log.exception("audio sink failed; remote audio is no longer played")
                sink = None
