"""The call engine against a plain aiortc peer standing in for the relative's browser.

The engine runs in its own thread as in the tablet; the "browser" runs on the test's loop and
offers, as Chromium does (docs/calls.md). Signals go through queues instead of MQTT.
"""

from __future__ import annotations

import asyncio
import copy
import queue
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from kiosk.calls import CallRefused
from kiosk.calls.engine import CallEngine
from kiosk.calls.media import BAR_COLOURS, PatternVideoTrack, ToneAudioTrack

# A Tuesday, 13:00 in Paris.
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

CONFIG: dict[str, Any] = {
    "revision": 3,
    "home": {"id": "h1", "name": "Les Tilleuls", "timezone": "Europe/Paris"},
    "residents": [
        {
            "id": "r1",
            "first_name": "Marcel",
            "contacts": [
                {"id": "c1", "approval_id": "a1", "display_name": "Julie", "policy": {}},
                {
                    "id": "c2",
                    "approval_id": "a-monday",
                    "display_name": "Paul",
                    "policy": {"windows": [{"days": [0], "start": "14:00", "end": "18:00"}]},
                },
                {
                    "id": "c3",
                    "approval_id": "a-auto",
                    "display_name": "Anne",
                    "policy": {"auto_answer_s": 1},
                },
            ],
        }
    ],
}


class Tablet:
    """The engine with its outputs captured in thread-safe queues."""

    def __init__(self, **options: Any) -> None:
        self.signals: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.config: dict[str, Any] | None = copy.deepcopy(CONFIG)
        self.engine = CallEngine(
            send_signal=self.signals.put,
            emit=self.events.put,
            record=lambda kind, data: self.records.append((kind, data)),
            config=lambda: self.config,
            media="synthetic",
            now=lambda: NOW,
            **options,
        )
        self.engine.start()

    # Generous: a process's first call imports the audio path (SciPy), seconds on a busy machine.
    async def signal(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        data = await asyncio.to_thread(self.signals.get, True, timeout)
        assert data["kind"] == kind, data
        return data

    async def event(self, state: str, timeout: float = 20.0) -> dict[str, Any]:
        event = await asyncio.to_thread(self.events.get, True, timeout)
        assert event["event"] == "call" and event["state"] == state, event
        return event

    def invite(self, call_id: str, approval_id: str = "a1", **extra: Any) -> None:
        self.engine.on_signal(
            {
                "kind": "invite",
                "call_id": call_id,
                "approval_id": approval_id,
                "resident_id": "r1",
                "contact": {"id": "c1", "display_name": "Julie"},
                "ice_servers": [],
                **extra,
            }
        )


@pytest.fixture
def tablet() -> Iterator[Tablet]:
    t = Tablet()
    yield t
    t.engine.close()


class Browser:
    """A plain aiortc peer that offers with its own synthetic tracks, as the relative's page."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._tasks.append(asyncio.ensure_future(self._count(track)))

    async def _count(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.VideoFrame):
                self.frames += 1

    async def offer(self) -> str:
        self.pc.addTrack(ToneAudioTrack())
        self.pc.addTrack(PatternVideoTrack())
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    b = Browser()
    yield b
    await b.close()


async def exchange_sdp(tablet: Tablet, browser: Browser, call_id: str) -> None:
    tablet.engine.on_signal({"kind": "offer", "call_id": call_id, "sdp": await browser.offer()})
    answer = await tablet.signal("answer")
    assert "a=candidate" in answer["sdp"]  # gathered before sending: no trickle
    await browser.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    await tablet.event("connected")


async def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def close_to(pixel: Any, colour: tuple[int, int, int]) -> bool:
    return all(abs(int(p) - c) <= 40 for p, c in zip(pixel, colour, strict=True))


async def test_incoming_call_carries_media_and_ends_when_the_relative_hangs_up(
    tablet: Tablet, browser: Browser
) -> None:
    tablet.invite("call-1")
    assert await tablet.signal("ringing") == {"kind": "ringing", "call_id": "call-1"}
    incoming = await tablet.event("incoming")
    assert incoming["contact_name"] == "Julie"
    assert incoming["direction"] == "incoming"
    assert incoming["auto_answer_s"] is None
    assert tablet.engine.call is not None and tablet.engine.call.state == "incoming"

    tablet.engine.answer_call()
    assert await tablet.signal("accept") == {"kind": "accept", "call_id": "call-1"}
    await tablet.event("connecting")
    await exchange_sdp(tablet, browser, "call-1")

    await wait_for(lambda: tablet.engine.call_stats().frames_decoded >= 50, 20)
    stats = tablet.engine.call_stats()
    assert stats.audio_frames > 0
    assert (stats.width, stats.height) == (640, 480)
    print(f"answer -> first remote frame: {stats.first_frame_after_answer_s} s")
    latest = tablet.engine.remote_video.get()
    assert latest is not None
    _, frame = latest
    assert frame.shape == (480, 640, 3)
    # The relative's test pattern: white bar on the left, red bar sixth, blue seventh.
    assert close_to(frame[100, 40], BAR_COLOURS[0])
    assert close_to(frame[100, 5 * 80 + 40], BAR_COLOURS[5])
    assert close_to(frame[100, 6 * 80 + 40], BAR_COLOURS[6])
    assert tablet.engine.local_video.get() is not None
    await wait_for(lambda: browser.frames > 0, 10)  # the tablet's video reaches the browser

    hung_up_at = time.monotonic()
    tablet.engine.on_signal({"kind": "hangup", "call_id": "call-1", "reason": "hung_up"})
    ended = await tablet.event("ended")
    assert time.monotonic() - hung_up_at < 2
    assert ended["reason"] == "hung_up"
    assert tablet.engine.call is None
    assert tablet.engine.remote_video.get() is None
    assert tablet.signals.empty()  # no hang-up echoed back
    kinds = [kind for kind, _ in tablet.records]
    assert kinds == ["call_started", "call_ended"]
    ended_record = tablet.records[1][1]
    assert ended_record["reason"] == "hung_up"
    assert ended_record["direction"] == "incoming"
    assert ended_record["approval_id"] == "a1"
    assert "sdp" not in ended_record
    assert tablet.engine.call_stats().frames_decoded >= 50  # the last call's, after it ended


async def test_outgoing_call_connects_and_ends_when_the_resident_hangs_up(
    tablet: Tablet, browser: Browser
) -> None:
    call_id = tablet.engine.start_call("a1")
    assert await tablet.signal("invite") == {
        "kind": "invite",
        "call_id": call_id,
        "approval_id": "a1",
    }
    assert (await tablet.event("dialling"))["direction"] == "outgoing"
    tablet.engine.on_signal({"kind": "ringing", "call_id": call_id})
    await tablet.event("ringing")
    with pytest.raises(CallRefused) as refused:
        tablet.engine.start_call("a1")
    assert refused.value.reason == "busy"
    tablet.engine.on_signal({"kind": "accepted", "call_id": call_id, "ice_servers": []})
    await tablet.event("connecting")
    await exchange_sdp(tablet, browser, call_id)
    await wait_for(lambda: tablet.engine.call_stats().frames_decoded >= 10, 20)

    hung_up_at = time.monotonic()
    tablet.engine.hang_up()
    assert await tablet.signal("hangup") == {
        "kind": "hangup",
        "call_id": call_id,
        "reason": "hung_up",
    }
    assert (await tablet.event("ended"))["reason"] == "hung_up"
    assert time.monotonic() - hung_up_at < 2
    assert tablet.engine.call is None
    assert tablet.engine.calls_today("a1", "Europe/Paris") == 1


async def test_an_invite_the_tablet_does_not_know_or_allow_is_declined_without_ringing(
    tablet: Tablet,
) -> None:
    tablet.invite("call-unknown", approval_id="a-revoked")
    assert await tablet.signal("decline") == {
        "kind": "decline",
        "call_id": "call-unknown",
        "reason": "policy",
    }
    tablet.invite("call-monday", approval_id="a-monday")  # it is Tuesday
    assert (await tablet.signal("decline"))["reason"] == "policy"
    tablet.invite("call-wrong-resident", resident_id="r2")
    assert (await tablet.signal("decline"))["reason"] == "policy"
    await asyncio.sleep(0.1)
    assert tablet.events.empty()
    assert tablet.records == []


def test_the_tablet_refuses_to_dial_outside_the_policy(tablet: Tablet) -> None:
    with pytest.raises(CallRefused) as refused:
        tablet.engine.start_call("a-monday")
    assert refused.value.reason == "policy"
    assert refused.value.next_allowed == datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    with pytest.raises(CallRefused) as unknown:
        tablet.engine.start_call("nobody")
    assert unknown.value.reason == "policy"
    assert tablet.signals.empty()


async def test_a_second_invite_is_declined_busy(tablet: Tablet) -> None:
    tablet.invite("call-1")
    await tablet.signal("ringing")
    await tablet.event("incoming")
    tablet.invite("call-1")  # a QoS 1 duplicate is not a second call
    tablet.invite("call-2", approval_id="a-auto")
    assert await tablet.signal("decline") == {
        "kind": "decline",
        "call_id": "call-2",
        "reason": "busy",
    }
    tablet.engine.decline_call()
    assert await tablet.signal("decline") == {
        "kind": "decline",
        "call_id": "call-1",
        "reason": "declined",
    }
    assert (await tablet.event("ended"))["reason"] == "declined"


async def test_nobody_answers_the_call_is_missed() -> None:
    tablet = Tablet(ring_timeout_s=0.3)
    try:
        tablet.invite("call-1")
        await tablet.event("incoming")
        assert (await tablet.event("ended"))["reason"] == "missed"
        await tablet.signal("ringing")
        assert await tablet.signal("hangup") == {
            "kind": "hangup",
            "call_id": "call-1",
            "reason": "missed",
        }
        call_id = tablet.engine.start_call("a1")
        await tablet.event("dialling")
        assert (await tablet.event("ended"))["reason"] == "missed"
        await tablet.signal("invite")
        assert (await tablet.signal("hangup"))["call_id"] == call_id
        assert tablet.engine.calls_today("a1", "Europe/Paris") == 0  # missed calls do not count
    finally:
        tablet.engine.close()


async def test_auto_answer_after_the_contacts_delay(tablet: Tablet) -> None:
    tablet.invite("call-1", approval_id="a-auto")
    await tablet.signal("ringing")
    rung = time.monotonic()
    assert (await tablet.event("incoming"))["auto_answer_s"] == 1
    await tablet.signal("accept")
    assert 0.9 <= time.monotonic() - rung < 2
    await tablet.event("connecting")


async def test_answer_mode_auto_answers_at_once() -> None:
    tablet = Tablet(answer="auto")
    try:
        tablet.invite("call-1")
        await tablet.signal("ringing")
        await tablet.signal("accept", timeout=0.5)
    finally:
        tablet.engine.close()


async def test_no_offer_after_accepting_ends_with_network() -> None:
    tablet = Tablet(connect_timeout_s=0.3)
    try:
        tablet.invite("call-1")
        await tablet.event("incoming")
        tablet.engine.answer_call()
        await tablet.event("connecting")
        assert (await tablet.event("ended"))["reason"] == "network"
    finally:
        tablet.engine.close()


async def test_the_caller_cancels_and_a_revocation_ends_the_call(tablet: Tablet) -> None:
    tablet.engine.on_signal({"kind": "invite", "call_id": "x", "approval_id": "a1"})
    await tablet.event("incoming")
    await tablet.signal("ringing")
    tablet.engine.on_signal({"kind": "hangup", "call_id": "x", "reason": "cancelled"})
    assert (await tablet.event("ended"))["reason"] == "cancelled"

    call_id = tablet.engine.start_call("a1")
    await tablet.event("dialling")
    tablet.config = {**CONFIG, "residents": [{"id": "r1", "contacts": []}]}
    tablet.engine.on_config()
    assert (await tablet.event("ended"))["reason"] == "policy"
    await tablet.signal("invite")
    assert await tablet.signal("hangup") == {
        "kind": "hangup",
        "call_id": call_id,
        "reason": "policy",
    }


async def test_the_peer_vanishing_without_a_hangup_ends_with_network(
    tablet: Tablet, browser: Browser
) -> None:
    tablet.invite("call-1")
    await tablet.signal("ringing")
    await tablet.event("incoming")
    tablet.engine.answer_call()
    await tablet.signal("accept")
    await tablet.event("connecting")
    await exchange_sdp(tablet, browser, "call-1")
    await browser.pc.close()  # the relative's page closed: DTLS goes away, no signal
    assert (await tablet.event("ended"))["reason"] == "network"
    assert await tablet.signal("hangup") == {
        "kind": "hangup",
        "call_id": "call-1",
        "reason": "network",
    }
