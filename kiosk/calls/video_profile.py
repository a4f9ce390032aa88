"""Video that fits the tablet: a capture profile chosen from the CPU, adjusted during a call.

The engine, not a per-model table, decides what the tablet sends (docs/calls.md "Video that fits
the tablet"):

1. **At start-up, a probe** (:func:`measure`): the time aiortc's own encoder takes per frame of
   the 640×480 test pattern, VP8 (and H.264 only when VP8 cannot hold the top rung), and the
   number of cores. :func:`choose` turns it into a rung of :data:`LADDER` and a codec preference.
2. **During a call**, the video track measures the sender's time per frame (encode, packetise,
   send: the time between handing a frame to aiortc and aiortc asking for the next one) and
   :func:`next_rung` steps one rung down when that load stays over budget, and one back up when
   the rung above would fit again, no sooner than :data:`HOLD_S` after the last change.

Everything here but :func:`measure` is a pure function of the measurements it is given.
``LIENS_VIDEO_PROFILE`` pins a rung by name (no probe, no adaptation); ``LIENS_VIDEO_PROBE``
(JSON, e.g. ``{"vp8_ms": 30, "cores": 4}``) replaces the probe's measurements — both for tests
and for a tablet whose owner knows better.
"""

from __future__ import annotations

import fractions
import json
import logging
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoProfile:
    """One rung: what the camera's frames are scaled and thinned to before the encoder."""

    name: str
    width: int
    height: int
    fps: int
    # The most the tablet asks the browser to send it (b=AS in the answer), bits per second:
    # a tablet that cannot encode VGA at 30 fps should not be made to decode it at full rate.
    max_bitrate: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


# Highest first. 4:3 throughout, as the tablet's camera and the test pattern: a rung never
# distorts or crops a face. 480×360 at 15 fps is the Raspberry Pi 4 class rung.
LADDER: tuple[VideoProfile, ...] = (
    VideoProfile("640x480@30", 640, 480, 30, 1_500_000),
    VideoProfile("640x480@20", 640, 480, 20, 1_000_000),
    VideoProfile("480x360@15", 480, 360, 15, 600_000),
    VideoProfile("320x240@15", 320, 240, 15, 350_000),
    VideoProfile("320x240@10", 320, 240, 10, 250_000),
)
PROBE_PIXELS = 640 * 480

# Budgets, as the share of wall time the sender spends on video (1.0 = all of it). At start-up
# the rung must fit in START_LOAD with room to spare for decoding, audio and the UI; during a
# call a rung is left when it stays above STEP_DOWN_LOAD, and the rung above is taken back when
# its estimated load is under STEP_UP_LOAD (the gap between the two keeps it from flapping).
START_LOAD = 0.5
START_LOAD_ONE_CORE = 0.3
STEP_DOWN_LOAD = 0.7
STEP_UP_LOAD = 0.35
# A decision needs this many seconds of frames at the current rung, and a step up this many
# seconds since the last change.
WINDOW_S = 2.0
HOLD_S = 10.0
# H.264 is preferred only when it holds a higher rung than VP8 (VP8 is what every browser sends
# and receives; libx264 is not always cheaper).
CODECS = ("VP8", "H264")

ENV_PROFILE = "LIENS_VIDEO_PROFILE"
ENV_PROBE = "LIENS_VIDEO_PROBE"
_TIME_BASE = fractions.Fraction(1, 90000)


@dataclass(frozen=True)
class Probe:
    """What the start-up probe measured: milliseconds per 640×480 frame, and the cores."""

    vp8_ms: float
    cores: int
    h264_ms: float | None = None


@dataclass(frozen=True)
class Choice:
    """The engine's decision for the next call: a rung of :data:`LADDER` and a codec."""

    rung: int
    codec: str  # "VP8" | "H264": the first in the answer's codec preferences
    source: str  # "probe" | "injected" | "pinned"
    probe: Probe | None = None

    @property
    def profile(self) -> VideoProfile:
        return LADDER[self.rung]

    def describe(self, rung: int | None = None) -> dict[str, Any]:
        """The profile as the call's stats and log carry it."""
        profile = LADDER[self.rung if rung is None else rung]
        return {
            **asdict(profile),
            "codec": self.codec,
            "source": self.source,
            "probe": asdict(self.probe) if self.probe is not None else None,
        }


# Until the probe has answered (the first seconds after start): the top rung, adapting.
DEFAULT_CHOICE = Choice(rung=0, codec="VP8", source="default")


def load(ms_per_frame: float, fps: float) -> float:
    """The share of wall time spent on video at ``ms_per_frame`` and ``fps``."""
    return ms_per_frame * fps / 1000.0


def best_rung(ms_per_probe_frame: float, budget: float) -> int:
    """The highest rung whose estimated load fits ``budget`` (the lowest if none does).

    The cost of a frame is taken as proportional to its pixels (VP8 and H.264 both roughly are).
    """
    for rung, profile in enumerate(LADDER):
        ms = ms_per_probe_frame * profile.pixels / PROBE_PIXELS
        if load(ms, profile.fps) <= budget:
            return rung
    return len(LADDER) - 1


def choose(probe: Probe, source: str = "probe") -> Choice:
    """The rung and codec for a tablet that measured ``probe``."""
    budget = START_LOAD if probe.cores >= 2 else START_LOAD_ONE_CORE
    vp8 = best_rung(probe.vp8_ms, budget)
    if probe.h264_ms is not None and probe.h264_ms > 0:
        h264 = best_rung(probe.h264_ms, budget)
        if h264 < vp8:
            return Choice(rung=h264, codec="H264", source=source, probe=probe)
    return Choice(rung=vp8, codec="VP8", source=source, probe=probe)


def needs_h264_probe(vp8_ms: float, cores: int) -> bool:
    """Whether measuring H.264 could change the choice (VP8 cannot hold the top rung)."""
    return choose(Probe(vp8_ms=vp8_ms, cores=cores)).rung > 0


def next_rung(rung: int, busy_s: Sequence[float], since_change_s: float) -> int:
    """The rung to use now, given the sender's recent seconds per frame at ``rung``.

    ``busy_s`` are the last frames' times (oldest first), all measured at ``rung``. With less
    than :data:`WINDOW_S` of them nothing changes. The median is used, so that one slow frame
    (a keyframe, a garbage collection) does not move the call.
    """
    profile = LADDER[rung]
    if len(busy_s) < max(3, int(WINDOW_S * profile.fps)):
        return rung
    per_frame_ms = statistics.median(busy_s) * 1000
    if load(per_frame_ms, profile.fps) > STEP_DOWN_LOAD and rung < len(LADDER) - 1:
        return rung + 1
    if rung > 0 and since_change_s >= HOLD_S:
        up = LADDER[rung - 1]
        up_ms = per_frame_ms * up.pixels / profile.pixels
        if load(up_ms, up.fps) <= STEP_UP_LOAD:
            return rung - 1
    return rung


def rung_named(name: str) -> int | None:
    for rung, profile in enumerate(LADDER):
        if profile.name == name:
            return rung
    return None


def parse_probe(raw: str) -> Probe | None:
    """A probe from ``LIENS_VIDEO_PROBE``'s JSON; None (and a log line) if it is not one."""
    try:
        obj = json.loads(raw)
        if not isinstance(obj, Mapping):
            raise ValueError("not an object")
        vp8 = float(obj["vp8_ms"])
        cores = int(obj.get("cores", os.cpu_count() or 1))
        h264 = obj.get("h264_ms")
        if vp8 <= 0 or cores <= 0:
            raise ValueError("vp8_ms and cores must be positive")
        return Probe(vp8_ms=vp8, cores=cores, h264_ms=float(h264) if h264 is not None else None)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s ignored (%s): %r", ENV_PROBE, exc, raw)
        return None


def from_environment(environ: Mapping[str, str] | None = None) -> Choice | None:
    """A pinned or injected choice from the environment, or None to probe."""
    env = os.environ if environ is None else environ
    name = env.get(ENV_PROFILE, "auto").strip()
    if name and name != "auto":
        rung = rung_named(name)
        if rung is not None:
            return Choice(rung=rung, codec="VP8", source="pinned")
        log.warning("%s=%r is not one of %s: probing", ENV_PROFILE, name, _names())
    raw = env.get(ENV_PROBE)
    if raw:
        probe = parse_probe(raw)
        if probe is not None:
            return choose(probe, source="injected")
    return None


def _names() -> list[str]:
    return [p.name for p in LADDER]


# -- the probe (the only part that measures) ---------------------------------------------------


def _ms_per_frame(mime_type: str, frames: int) -> float:
    """Wall milliseconds (lower quartile) aiortc's encoder takes per 640×480 test-pattern frame."""
    import av
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from kiosk.calls.media import pattern_frame

    parameters: dict[str, Any] = (
        {"packetization-mode": "1", "level-asymmetry-allowed": "1"}
        if mime_type == "video/H264"
        else {}
    )
    encoder = get_encoder(
        RTCRtpCodecParameters(mimeType=mime_type, clockRate=90000, parameters=parameters)
    )
    times = []
    for index in range(frames + 1):
        frame = av.VideoFrame.from_ndarray(pattern_frame(index * 4), format="rgb24")
        frame.pts = index * 3000
        frame.time_base = _TIME_BASE
        start = time.perf_counter()
        encoder.encode(frame, force_keyframe=index == 0)
        if index:  # the first frame is a keyframe and sets the encoder up: not typical
            times.append(time.perf_counter() - start)
    # The lower quartile: what this machine can do; a moment of load elsewhere must not set the
    # profile of every call (the call's own measurements step down under lasting load).
    return round(sorted(times)[len(times) // 4] * 1000, 2)


def measure(frames: int = 8) -> Probe:
    """Time aiortc's encoders on this machine, now (blocking: about 0.1–0.5 s)."""
    cores = os.cpu_count() or 1
    vp8 = _ms_per_frame("video/VP8", frames)
    h264 = None
    if needs_h264_probe(vp8, cores):
        try:
            h264 = _ms_per_frame("video/H264", frames)
        except Exception as exc:  # no libx264 in this FFmpeg build: VP8 it is
            log.info("no H.264 encoder to probe (%s)", exc)
    return Probe(vp8_ms=vp8, cores=cores, h264_ms=h264)


_measured: list[Probe] = []  # one probe per process: the machine does not change


def decide(environ: Mapping[str, str] | None = None) -> Choice:
    """The choice for this tablet: pinned or injected by the environment, else probed."""
    choice = from_environment(environ)
    if choice is None:
        try:
            if not _measured:
                _measured.append(measure())
            choice = choose(_measured[0])
        except Exception:
            log.exception("video probe failed: the top rung, VP8")
            choice = DEFAULT_CHOICE
    log.info("video profile: %s", choice.describe())
    return choice


def with_bandwidth(sdp: str, kind: str, bits_per_second: int) -> str:
    """``sdp`` with ``b=AS`` (kbit/s) on its ``kind`` m-sections, after their ``c=`` line.

    In an answer this is the most the other side may send us on that m-line (RFC 4566 5.8).
    Any ``b=`` line already there is replaced.
    """
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(newline)
    out: list[str] = []
    in_kind = False
    for line in lines:
        if line.startswith("m="):
            in_kind = line.startswith(f"m={kind} ")
        elif in_kind and line.startswith("b="):
            continue
        out.append(line)
        if in_kind and line.startswith("c="):
            out.append(f"b=AS:{max(1, bits_per_second // 1000)}")
    return newline.join(out)
