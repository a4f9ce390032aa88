"""The engine prepares a call before the relative answers, and lets go of it when it ends.

The engine runs in its own thread as on the tablet; the relative's browser is a plain aiortc peer
(see test_call_engine.py). Docs: docs/calls.md "Call set-up: where the time goes".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import av
import psutil
import pytest
from aiortc import MediaStreamTrack, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from kiosk.calls.video_profile import Choice, rung_named
from tests.unit.test_call_engine import Browser, Tablet, wait_for

STEPS = (
    "dialled",
    "offer_received",
    "remote_set",
    "answer_sent",
    "dtls_connected",
    "first_frame",
)


def udp_sockets() -> set[Any]:
    """This process's UDP sockets, by local address."""
    return {c.laddr for c in psutil.Process().net_connections(kind="udp")}


async def released(opened: set[Any]) -> None:
    """Wait until none of ``opened`` is open any more (other tests' sockets do not matter)."""
    await wait_for(lambda: not (opened & udp_sockets()), 5)


class SizedBrowser(Browser):
    """The relative's page, noting the size of the tablet's frames it decodes."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: set[tuple[int, int]] = set()

    async def _count(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.VideoFrame):
                self.frames += 1
                self.sizes.add((frame.width, frame.height))


@pytest.fixture
def tablet() -> Iterator[Tablet]:
    t = Tablet()
    yield t
    t.engine.close()


@pytest.fixture
def slow_tablet() -> Iterator[Tablet]:
    rung = rung_named("480x360@15")
    assert rung is not None
    t = Tablet(video_choice=Choice(rung=rung, codec="VP8", source="injected"))
    yield t
    t.engine.close()


async def test_an_outgoing_call_is_ready_before_the_relative_answers(
    slow_tablet: Tablet,
) -> None:
    tablet = slow_tablet
    call_id = tablet.engine.start_call("a1")
    await tablet.signal("invite")
    tablet.engine.on_signal({"kind": "ringing", "call_id": call_id, "ice_servers": []})
    # While the relative's page rings: media open, peer connection made, candidates gathered.
    await wait_for(
        lambda: {"media_ready", "pc_ready"} <= tablet.engine.call_stats().timeline.keys(), 10
    )
    assert "offer_received" not in tablet.engine.call_stats().timeline

    tablet.engine.on_signal({"kind": "accepted", "call_id": call_id, "ice_servers": []})
    browser = SizedBrowser()
    try:
        tablet.engine.on_signal({"kind": "offer", "call_id": call_id, "sdp": await browser.offer()})
        answer = (await tablet.signal("answer"))["sdp"]
        audio, video = sections(answer, "audio"), sections(answer, "video")
        assert "a=candidate" in answer
        # The most the tablet asks to receive: its rung's bitrate, on the video m-line only.
        assert "b=AS:600" in video and "b=AS" not in audio
        await browser.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await wait_for(lambda: "first_frame" in tablet.engine.call_stats().timeline, 20)
        await wait_for(lambda: browser.frames >= 5, 20)

        stats = tablet.engine.call_stats()
        times = [stats.timeline[step] for step in STEPS]
        assert times == sorted(times), stats.timeline
        assert stats.timeline["pc_ready"] < stats.timeline["offer_received"]
        assert stats.timeline["media_ready"] < stats.timeline["offer_received"]
        profile: dict[str, Any] = stats.video_profile or {}
        assert (profile["name"], profile["codec"], profile["source"]) == (
            "480x360@15",
            "VP8",
            "injected",
        )
        # What the relative receives is the profile's size, not the camera's 640×480.
        assert browser.sizes == {(480, 360)}
    finally:
        tablet.engine.hang_up()
        await browser.close()


async def test_a_call_given_up_while_it_rings_lets_go_of_its_sockets(tablet: Tablet) -> None:
    before = udp_sockets()
    call_id = tablet.engine.start_call("a1")
    await tablet.signal("invite")
    tablet.engine.on_signal({"kind": "ringing", "call_id": call_id, "ice_servers": []})
    await wait_for(lambda: "pc_ready" in tablet.engine.call_stats().timeline, 10)
    opened = udp_sockets() - before
    assert opened  # gathered: its candidates' sockets are open
    tablet.engine.hang_up()
    await wait_for(lambda: tablet.engine.call is None, 5)
    await released(opened)


async def test_an_incoming_call_declined_lets_go_of_what_it_prepared(tablet: Tablet) -> None:
    before = udp_sockets()
    tablet.invite("call-9")
    await tablet.signal("ringing")
    await wait_for(lambda: "pc_ready" in tablet.engine.call_stats().timeline, 10)
    opened = udp_sockets() - before
    assert opened
    # No camera while it only rings: it opens when the resident answers.
    assert "media_ready" not in tablet.engine.call_stats().timeline
    tablet.engine.decline_call()
    assert (await tablet.signal("decline"))["reason"] == "declined"
    await wait_for(lambda: tablet.engine.call is None, 5)
    await released(opened)


async def test_with_early_setup_off_everything_waits_for_the_offer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIENS_CALL_EARLY_SETUP", "0")  # what the set-up bench compares with
    tablet = Tablet()
    browser = Browser()
    try:
        call_id = tablet.engine.start_call("a1")
        await tablet.signal("invite")
        tablet.engine.on_signal({"kind": "ringing", "call_id": call_id, "ice_servers": []})
        tablet.engine.on_signal({"kind": "accepted", "call_id": call_id, "ice_servers": []})
        tablet.engine.on_signal({"kind": "offer", "call_id": call_id, "sdp": await browser.offer()})
        await tablet.signal("answer")
        timeline = tablet.engine.call_stats().timeline
        assert timeline["offer_received"] < timeline["media_ready"]
        assert timeline["offer_received"] < timeline["pc_ready"] < timeline["answer_sent"]
    finally:
        tablet.engine.close()
        await browser.close()


def sections(sdp: str, kind: str) -> str:
    """The text of ``sdp``'s ``kind`` m-sections."""
    parts = sdp.split("\r\nm=")
    return "\r\n".join(p for p in parts[1:] if p.startswith(f"{kind} "))
