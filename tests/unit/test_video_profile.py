"""The video profile's decisions, from injected measurements (docs/calls.md "Video that fits").

The decisions are pure functions: each test gives the encoder times a machine would measure and
checks the rung and codec the engine would use. The adaptive track is driven by a source that
hands frames at once and by an injected clock, so no test depends on this machine's speed.
"""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack

from kiosk.calls.adaptive_video import AdaptiveVideoTrack
from kiosk.calls.video_profile import (
    HOLD_S,
    LADDER,
    Choice,
    Probe,
    choose,
    from_environment,
    next_rung,
    parse_probe,
    rung_named,
    with_bandwidth,
)


def rung(name: str) -> int:
    found = rung_named(name)
    assert found is not None, name
    return found


# -- start-up choice ---------------------------------------------------------------------------


def test_a_fast_machine_sends_vga_at_30_fps_in_vp8() -> None:
    choice = choose(Probe(vp8_ms=6.0, cores=2))
    assert (choice.profile.name, choice.codec) == ("640x480@30", "VP8")


def test_a_raspberry_pi_4_class_machine_gets_a_smaller_rung() -> None:
    # ~30 ms per VGA frame: 30 fps would take the whole of a core, 20 fps 60 % of it.
    choice = choose(Probe(vp8_ms=30.0, cores=4))
    assert choice.profile.name == "480x360@15"
    assert (choice.profile.width, choice.profile.height, choice.profile.fps) == (480, 360, 15)


def test_a_very_slow_machine_gets_the_lowest_rung_not_nothing() -> None:
    assert choose(Probe(vp8_ms=500.0, cores=4)).rung == len(LADDER) - 1


def test_one_core_leaves_room_for_decoding_and_the_ui() -> None:
    assert choose(Probe(vp8_ms=12.0, cores=1)).rung > choose(Probe(vp8_ms=12.0, cores=2)).rung


def test_h264_is_preferred_only_when_it_holds_a_higher_rung_than_vp8() -> None:
    slow_vp8 = choose(Probe(vp8_ms=30.0, cores=4, h264_ms=12.0))
    assert (slow_vp8.codec, slow_vp8.profile.name) == ("H264", "640x480@30")
    # Same rung either way: VP8, which every browser sends and receives.
    assert choose(Probe(vp8_ms=6.0, cores=4, h264_ms=3.0)).codec == "VP8"
    assert choose(Probe(vp8_ms=30.0, cores=4, h264_ms=40.0)).codec == "VP8"


def test_the_ladder_keeps_the_camera_aspect_and_goes_down() -> None:
    for higher, lower in zip(LADDER, LADDER[1:], strict=False):
        assert higher.pixels * higher.fps > lower.pixels * lower.fps
        assert higher.max_bitrate > lower.max_bitrate
    assert {p.width * 3 == p.height * 4 for p in LADDER} == {True}


# -- during a call -----------------------------------------------------------------------------


def test_a_decision_needs_two_seconds_of_frames() -> None:
    assert next_rung(0, [0.030] * 10, since_change_s=60) == 0


def test_an_encoder_over_budget_steps_down_one_rung() -> None:
    # 30 ms per frame at 30 fps: 90 % of the time.
    assert next_rung(0, [0.030] * 60, since_change_s=0) == 1
    assert next_rung(1, [0.040] * 40, since_change_s=0) == 2


def test_the_lowest_rung_is_kept_however_slow() -> None:
    last = len(LADDER) - 1
    assert next_rung(last, [0.5] * 20, since_change_s=0) == last


def test_one_slow_frame_does_not_move_the_call() -> None:
    busy = [0.005] * 59 + [0.9]  # a keyframe, a garbage collection
    assert next_rung(0, busy, since_change_s=0) == 0


def test_it_steps_back_up_once_the_rung_above_fits_and_not_sooner_than_the_hold() -> None:
    quick = [0.004] * 40  # at 640x480@20: the rung above would take 12 %
    assert next_rung(1, quick, since_change_s=HOLD_S - 1) == 1
    assert next_rung(1, quick, since_change_s=HOLD_S) == 0


def test_between_the_two_budgets_it_stays_where_it_is() -> None:
    # 640x480@20 at 20 ms/frame is 40 %: not over budget, and 30 fps would be 60 %.
    assert next_rung(1, [0.020] * 40, since_change_s=HOLD_S * 10) == 1


# -- the environment ---------------------------------------------------------------------------


def test_a_pinned_profile_and_an_injected_probe() -> None:
    pinned = from_environment({"LIENS_VIDEO_PROFILE": "320x240@15"})
    assert pinned is not None and pinned.source == "pinned"
    assert pinned.profile.name == "320x240@15"
    injected = from_environment({"LIENS_VIDEO_PROBE": '{"vp8_ms": 30, "cores": 4}'})
    assert injected is not None and injected.source == "injected"
    assert injected.profile.name == "480x360@15"
    assert injected.describe()["probe"] == {"vp8_ms": 30.0, "cores": 4, "h264_ms": None}
    assert from_environment({}) is None


@pytest.mark.parametrize(
    "raw", ["", "nonsense", "[]", '{"cores": 2}', '{"vp8_ms": -1}', '{"vp8_ms": "x"}']
)
def test_an_unreadable_probe_is_ignored(raw: str) -> None:
    assert parse_probe(raw) is None


def test_an_unknown_profile_name_means_probing() -> None:
    assert from_environment({"LIENS_VIDEO_PROFILE": "4k@60"}) is None


def test_the_answer_caps_only_its_video_section() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 0.0.0.0",
            "a=mid:0",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "c=IN IP4 0.0.0.0",
            "b=AS:5000",
            "a=mid:1",
            "",
        ]
    )
    out = with_bandwidth(sdp, "video", 600_000).split("\r\n")
    assert out[4:8] == ["m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "b=AS:600", "a=mid:1"]
    assert out[:4] == sdp.split("\r\n")[:4]


# -- the adaptive track ------------------------------------------------------------------------


class InstantSource(MediaStreamTrack):
    """640×480 frames at a 30 fps timeline, handed over at once."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.index = 0
        self.image = np.zeros((480, 640, 3), dtype=np.uint8)

    async def recv(self) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(self.image, format="rgb24")
        frame.pts = self.index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.index += 1
        return frame


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_track_thins_and_scales_to_its_rung() -> None:
    async def run() -> tuple[list[tuple[int, int]], int]:
        source = InstantSource()
        track = AdaptiveVideoTrack(source, Choice(rung("480x360@15"), "VP8", "injected"))
        sizes = [(f.width, f.height) for f in [await track.recv() for _ in range(10)]]
        return sizes, source.index

    sizes, pulled = asyncio.run(run())
    assert sizes == [(480, 360)] * 10
    assert 19 <= pulled <= 20  # 15 of every 30 frames go on


def test_the_track_steps_down_when_the_sender_is_slow_and_reports_it() -> None:
    changes: list[str] = []
    clock = Clock()

    async def run() -> AdaptiveVideoTrack:
        track = AdaptiveVideoTrack(
            InstantSource(),
            Choice(0, "VP8", "probe"),
            on_change=lambda _rung, profile: changes.append(profile.name),
            clock=clock,
        )
        for _ in range(70):
            await track.recv()
            clock.now += 0.030  # the sender takes 30 ms per frame: 90 % at 30 fps
        await track.recv()
        return track

    track = asyncio.run(run())
    assert changes == ["640x480@20"]
    assert track.profile.name == "640x480@20" and track.changes == 1


def test_a_pinned_profile_does_not_adapt() -> None:
    clock = Clock()

    async def run() -> AdaptiveVideoTrack:
        track = AdaptiveVideoTrack(
            InstantSource(), Choice(0, "VP8", "pinned"), adapt=False, clock=clock
        )
        for _ in range(100):
            await track.recv()
            clock.now += 0.050
        return track

    assert asyncio.run(run()).rung == 0
