"""Calls on the relative's page, in real Chromium, without a tablet.

The page comes from the real backend; its signalling WebSocket (``/f/{token}/ws``) is played by
the test through Playwright's ``page.route_web_socket`` (the backend's side of docs/calls.md),
and the tablet's SDP answer is made by a real aiortc peer in the test process, so the media path
(ICE, DTLS, SRTP, VP8 decoding in the browser) is the real one.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from tests.browser.conftest import CHROMIUM
from tests.browser.screens import Screenshots
from tests.helpers import RunningBackend

PHONE = {"width": 412, "height": 860}
DESKTOP = {"width": 1280, "height": 800}
MEDIA_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
WS_URL = re.compile(r"/f/[^/?]+/ws(\?.*)?$")


@pytest.fixture(scope="session")
def media_browser(browser: Any) -> Iterator[Any]:
    """A second Chromium from the same Playwright, with a fake camera and microphone."""
    chromium = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=MEDIA_ARGS,
    )
    try:
        yield chromium
    finally:
        chromium.close()


class FakeSignalling:
    """The backend's end of the page's WebSocket, played by the test."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.routes: list[Any] = []
        self.sent: list[dict[str, Any]] = []  # what the page sent, in order
        self.hello: dict[str, Any] | None = None  # sent at once to every new connection
        page.route_web_socket(WS_URL, self._connected)

    def _connected(self, ws: Any) -> None:
        self.routes.append(ws)
        ws.on_message(lambda message: self.sent.append(json.loads(message)))
        if self.hello is not None:
            ws.send(json.dumps(self.hello))

    def send(self, msg: dict[str, Any]) -> None:
        self.routes[-1].send(json.dumps(msg))

    def wait_until(self, what: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = what()
            if result:
                return result
            self.page.wait_for_timeout(50)  # lets Playwright deliver the page's frames
        raise AssertionError("timed out")

    def wait_for(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_until(
            lambda: next((m for m in self.sent if m.get("type") == kind), None), timeout
        )

    def types(self) -> list[str]:
        return [m.get("type", "?") for m in self.sent]


class Tablet:
    """The tablet's media side: a real aiortc peer answering the browser's offer."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pc: Any = None

    def run(self, coro: Any, timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def answer(self, offer_sdp: str) -> str:
        return str(self.run(self._answer(offer_sdp)))

    async def _answer(self, offer_sdp: str) -> str:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from aiortc.contrib.media import MediaBlackhole
        from aiortc.mediastreams import AudioStreamTrack

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        sink = MediaBlackhole()
        pc.on("track", sink.addTrack)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(_pattern_track())
        await pc.setLocalDescription(await pc.createAnswer())
        await sink.start()
        return str(pc.localDescription.sdp)

    def close(self) -> None:
        if self.pc is not None:
            self.run(self.pc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _pattern_track() -> Any:
    """A calm, moving picture (not aiortc's plain green), so the in-call screenshot shows one."""
    import av
    import numpy as np
    from aiortc.mediastreams import VideoStreamTrack

    h, w = 480, 640
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    base = np.stack(
        [200 - 90 * y + 0 * x, 170 - 60 * y + 30 * x, 140 + 60 * x - 40 * y], axis=-1
    ).astype(np.uint8)
    yy, xx = np.ogrid[:h, :w]
    face = (yy - 230) ** 2 / 130**2 + (xx - 320) ** 2 / 100**2 <= 1
    base[face] = (236, 200, 170)

    class Pattern(VideoStreamTrack):
        async def recv(self) -> Any:
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame.from_ndarray(np.roll(base, pts // 3000 % w, axis=1), "rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 90000) if time_base is None else time_base
            return frame

    return Pattern()


@pytest.fixture
def tablet() -> Iterator[Tablet]:
    t = Tablet()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def call_page(media_browser: Any) -> Iterator[Any]:
    context = media_browser.new_context(viewport=PHONE, locale="fr-FR")
    context.grant_permissions(["camera", "microphone"])
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def _open(backend: RunningBackend, page: Any, residents: int = 1) -> tuple[dict, FakeSignalling]:
    ids = backend.seed(residents=residents, contacts=1)
    for rid in ids["residents"]:
        backend.approve(rid, ids["contacts"][0])
    signalling = FakeSignalling(page)
    names = ["Marcel", "Odette", "Lucien"]
    signalling.hello = {
        "type": "hello",
        "contact": {"id": ids["contacts"][0], "display_name": "Julie"},
        "residents": [
            {
                "id": rid,
                "first_name": names[i],
                "available": True,
                "reason": None,
                "message": None,
                "next": None,
            }
            for i, rid in enumerate(ids["residents"])
        ],
        "ice_servers": [],
        "missed": [],
    }
    return ids, signalling


def _state(page: Any) -> str:
    return str(page.evaluate("window.liensCall && window.liensCall.state"))


def _wait_state(page: Any, state: str, timeout_ms: int = 15000) -> None:
    page.wait_for_function(
        f"window.liensCall && window.liensCall.state === {state!r}", timeout=timeout_ms
    )


def _shot(shots: Screenshots, page: Any, name: str) -> None:
    shots(page, f"family-call-{name}-phone")
    page.set_viewport_size(DESKTOP)
    # The layout for the new width, drawn (two animation frames), before the picture.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    shots(page, f"family-call-{name}-desktop")
    page.set_viewport_size(PHONE)


FRAMES_DECODED = """async () => {
  const stats = await window.liensCall.pc.getStats();
  let frames = 0;
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded || 0;
  });
  return frames;
}"""

LOCAL_ENABLED = """(kind) => {
  const s = window.liensCall.pc.getSenders().find((x) => x.track && x.track.kind === kind);
  return s.track.enabled;
}"""


def _check_offer(offer: dict[str, Any], call_id: str) -> None:
    assert offer["call_id"] == call_id
    sdp = offer["sdp"]
    assert sdp.index("m=audio") < sdp.index("m=video")
    assert sdp.count("a=sendrecv") == 2
    assert "a=candidate" in sdp  # ICE gathering was complete: no trickle
    assert "a=end-of-candidates" in sdp or sdp.count("a=candidate") >= 2


def test_incoming_call_rings_is_answered_and_shows_the_tablets_video(
    backend: RunningBackend, call_page: Any, tablet: Tablet, shots: Screenshots
) -> None:
    page = call_page
    ids, signalling = _open(backend, page)
    # The browser shows the relative's own clock (this process's time zone, as Chromium's).
    yesterday = (datetime.now().astimezone() - timedelta(days=1)).replace(hour=14, minute=10)
    signalling.hello["missed"] = [
        {"call_id": "m1", "resident_first_name": "Marcel", "at": yesterday.isoformat()}
    ]
    page.goto(f"{backend.base_url}/f/{ids['tokens'][0]}")
    button = page.locator(".person .btn-call")
    button.wait_for(state="visible")
    assert button.is_enabled() and button.inner_text().strip() == "Appeler"
    assert page.locator("#missed").is_visible()
    missed = page.locator("#missed-list li").inner_text()
    assert missed.startswith("Marcel a essayé de vous appeler hier à ") and " h " in missed
    _shot(shots, page, "list")

    started = time.monotonic()
    signalling.send(
        {
            "type": "incoming",
            "call_id": "c1",
            "resident": {"id": ids["residents"][0], "first_name": "Marcel"},
        }
    )
    page.locator("#btn-answer").wait_for(state="visible")
    assert _state(page) == "ringing"
    assert page.locator("#call-title").inner_text() == "Marcel vous appelle"
    assert page.locator("#btn-answer").inner_text().strip() == "Décrocher"
    assert page.locator("#btn-decline").inner_text().strip() == "Refuser"
    for name in ("#btn-answer", "#btn-decline"):
        assert page.locator(name).bounding_box()["height"] >= 48
    _shot(shots, page, "ringing")

    page.locator("#btn-answer").click()
    offer = signalling.wait_for("offer")
    assert signalling.types()[:2] == ["accept", "offer"]
    assert signalling.sent[0] == {"type": "accept", "call_id": "c1"}
    _check_offer(offer, "c1")
    offer_at = time.monotonic()
    signalling.send({"type": "answer", "call_id": "c1", "sdp": tablet.answer(offer["sdp"])})
    _wait_state(page, "connected")
    connected_at = time.monotonic()
    frames = signalling.wait_until(lambda: (f := page.evaluate(FRAMES_DECODED)) > 20 and f, 20)
    print(  # noqa: T201 - timings for the report
        f"\nincoming→offer {offer_at - started:.2f}s, "
        f"offer→connected {connected_at - offer_at:.2f}s, "
        f"{frames} frames decoded {time.monotonic() - offer_at:.2f}s after the offer"
    )
    assert page.locator("#remote-video").is_visible()
    page.wait_for_timeout(500)
    _shot(shots, page, "incall")

    # Microphone and camera: the buttons switch the local tracks, the label says the state.
    assert page.evaluate(LOCAL_ENABLED, "audio") is True
    page.locator("#btn-mic").click()
    assert page.evaluate(LOCAL_ENABLED, "audio") is False
    assert page.locator("#btn-mic").inner_text().strip() == "Micro coupé"
    assert page.locator("#btn-mic").get_attribute("aria-pressed") == "true"
    page.locator("#btn-mic").click()
    assert page.evaluate(LOCAL_ENABLED, "audio") is True
    assert page.locator("#btn-mic").inner_text().strip() == "Micro activé"
    page.locator("#btn-cam").click()
    assert page.evaluate(LOCAL_ENABLED, "video") is False
    assert page.locator("#btn-cam").inner_text().strip() == "Caméra coupée"
    page.locator("#btn-cam").click()
    assert page.evaluate(LOCAL_ENABLED, "video") is True

    page.locator("#btn-hangup").click()
    hangup = signalling.wait_for("hangup")
    assert hangup == {"type": "hangup", "call_id": "c1"}
    assert page.locator("#call-text").inner_text() == "Appel terminé."
    assert page.evaluate("window.liensCall.pc") is None
    _wait_state(page, "idle")
    assert page.locator("#call").is_hidden()
    assert page.locator("#call-notice").inner_text() == "Appel terminé."
    assert page.locator(".person .btn-call").is_enabled()


def test_outgoing_call_rings_connects_and_ends_when_the_server_says_so(
    backend: RunningBackend, call_page: Any, tablet: Tablet
) -> None:
    page = call_page
    ids, signalling = _open(backend, page)
    page.goto(f"{backend.base_url}/f/{ids['tokens'][0]}")
    page.locator(".person .btn-call").click()
    assert signalling.wait_for("call") == {"type": "call", "resident_id": ids["residents"][0]}
    page.locator("#btn-cancel").wait_for(state="visible")
    assert _state(page) == "dialling"
    assert page.locator("#call-title").inner_text() == "Marcel"
    assert page.locator("#call-text").inner_text() == "Appel en cours…"
    assert page.locator("#btn-cancel").inner_text().strip() == "Annuler"

    signalling.send({"type": "calling", "call_id": "c2", "resident_id": ids["residents"][0]})
    signalling.send({"type": "ringing", "call_id": "c2"})
    _wait_state(page, "ringing")
    assert page.locator("#call-text").inner_text() == "Ça sonne chez Marcel…"
    assert "offer" not in signalling.types()  # not before the tablet has answered

    signalling.send({"type": "accepted", "call_id": "c2"})
    offer = signalling.wait_for("offer")
    _check_offer(offer, "c2")
    signalling.send({"type": "answer", "call_id": "c2", "sdp": tablet.answer(offer["sdp"])})
    _wait_state(page, "connected")
    signalling.wait_until(lambda: page.evaluate(FRAMES_DECODED) > 20, 20)

    signalling.send({"type": "ended", "call_id": "c2", "reason": "hung_up"})
    _wait_state(page, "idle")
    assert "hangup" not in signalling.types()
    assert page.locator("#call-notice").inner_text() == "Appel terminé."
    assert page.locator(".person .btn-call").is_enabled()


def test_refused_unavailable_declined_missed_and_reconnection(
    backend: RunningBackend, call_page: Any
) -> None:
    page = call_page
    ids, signalling = _open(backend, page, residents=2)
    odette = signalling.hello["residents"][1]
    sentence = "Odette n'est pas disponible maintenant ; prochain créneau lundi à 14 h"
    odette.update(available=False, reason="window", message=sentence)
    page.goto(f"{backend.base_url}/f/{ids['tokens'][0]}")
    cards = page.locator(".person")
    cards.first.locator(".btn-call").wait_for(state="visible")
    assert cards.nth(1).locator(".btn-call").is_disabled()
    assert cards.nth(1).locator(".availability").inner_text() == sentence

    # A call the backend does not relay: its sentence, back on the list.
    refusal = "Marcel n'est pas disponible maintenant ; prochain créneau lundi à 14 h"
    cards.first.locator(".btn-call").click()
    signalling.wait_for("call")
    signalling.send(
        {
            "type": "refused",
            "resident_id": ids["residents"][0],
            "reason": "policy",
            "message": refusal,
            "next": None,
        }
    )
    page.locator("#call-text").filter(has_text=refusal).wait_for()
    _wait_state(page, "idle")
    assert page.locator("#call-notice").inner_text() == refusal

    # Refusing an incoming call.
    marcel = {"id": ids["residents"][0], "first_name": "Marcel"}
    signalling.send({"type": "incoming", "call_id": "c3", "resident": marcel})
    page.locator("#btn-decline").click()
    assert signalling.wait_for("decline") == {"type": "decline", "call_id": "c3"}
    _wait_state(page, "idle")

    # Nobody answered: the backend ends the ringing.
    signalling.send({"type": "incoming", "call_id": "c4", "resident": marcel})
    _wait_state(page, "ringing")
    signalling.send({"type": "ended", "call_id": "c4", "reason": "missed"})
    page.locator("#call-text").filter(has_text="Vous avez manqué l'appel de Marcel.").wait_for()
    _wait_state(page, "idle")

    # The WebSocket drops: the page says so, reconnects by itself and gets a new hello.
    signalling.routes[-1].close()
    signalling.wait_until(lambda: len(signalling.routes) == 2, 10)
    page.wait_for_function("window.liensCall.online === true")
    assert cards.first.locator(".btn-call").is_enabled()
