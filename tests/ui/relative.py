"""A relative for live call tests: a family page's WebSocket and an aiortc peer, no browser.

It plays the page's side of docs/calls.md by hand: ``call``, then on ``accepted`` a full SDP
offer (one audio and one video m-line, ICE gathering complete, no STUN), the tablet's
``answer``, and ``hangup``. Its video is a flat picture a test recognises on the tablet's
screen — the left half pure red, the right half pure blue — unlike the tablet's own synthetic
bars, so a red/blue texture cannot be the tablet's self-view. VP8 keeps flat colours within ±40.

The peer runs on an asyncio loop in its own thread; the WebSocket is read by another thread
into a queue, each message stamped with the ``time.monotonic()`` it arrived at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from kiosk.calls.media import ToneAudioTrack

WIDTH = 640
HEIGHT = 480
RED = (255, 0, 0)
BLUE = (0, 0, 255)
TOLERANCE = 40  # per channel, after VP8


def red_blue_frame() -> np.ndarray:
    """The relative's picture: (HEIGHT, WIDTH, 3) RGB, left half red, right half blue."""
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[:, : WIDTH // 2] = RED
    image[:, WIDTH // 2 :] = BLUE
    return image


def near(rgb: Sequence[int], expected: Sequence[int], tolerance: int = TOLERANCE) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(rgb[:3], expected, strict=True))


def looks_red_blue(left: Sequence[int], right: Sequence[int]) -> bool:
    """True when a pixel of the left quarter is red and one of the right quarter is blue."""
    return near(left, RED) and near(right, BLUE)


class RedBlueTrack(VideoStreamTrack):
    """The relative's camera: :func:`red_blue_frame` at 30 frames per second."""

    def __init__(self) -> None:
        super().__init__()
        self._image = red_blue_frame()
        self.frames_sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self._image, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        self.frames_sent += 1
        return frame


class Relative:
    """One relative's open page: ``call``/``offer``/``hangup`` out, every message in."""

    def __init__(self, base_url: str, token: str) -> None:
        url = base_url.replace("http://", "ws://") + f"/f/{token}/ws?lang=fr"
        self.ws = connect(url, open_timeout=5)
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []  # every message, in order, for failure messages
        threading.Thread(target=self._read, name="relative-ws", daemon=True).start()
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="relative-rtc", daemon=True
        )
        self._loop_thread.start()
        self.pc: RTCPeerConnection | None = None
        self.video: RedBlueTrack | None = None
        self.frames_received = 0
        self._last_frame: av.VideoFrame | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.hello = self.expect("hello")

    # --- signalling ----------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                message["_at"] = time.monotonic()
                self.inbox.put(message)
        except (ConnectionClosed, OSError, ValueError):
            pass

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))

    def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of type ``kind`` (others are kept in ``seen``), with its ``_at``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = self.inbox.get(timeout=max(0.0, remaining))
            except queue.Empty:
                kinds = [m.get("type") for m in self.seen]
                raise AssertionError(
                    f"the relative never received {kind!r} in {timeout} s (saw {kinds})"
                ) from None
            self.seen.append(message)
            if message.get("type") == kind:
                return message

    def call(self, resident_id: str) -> str:
        """Call the resident; returns the call id once the tablet rings."""
        self.send(type="call", resident_id=resident_id)
        call_id = str(self.expect("calling")["call_id"])
        self.expect("ringing")
        return call_id

    def hang_up(self, call_id: str) -> None:
        self.send(type="hangup", call_id=call_id)

    # --- media ---------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def send_offer(self, call_id: str) -> None:
        """Once ``accepted``: the whole offer, every host candidate in it."""
        self._run(self._offer(call_id))

    async def _offer(self, call_id: str) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self._tasks.append(asyncio.ensure_future(self._consume(track)))

        self.video = RedBlueTrack()
        pc.addTrack(ToneAudioTrack())
        pc.addTrack(self.video)
        # Returns once ICE gathering is complete: the offer carries every candidate.
        await pc.setLocalDescription(await pc.createOffer())
        self.send(type="offer", call_id=call_id, sdp=pc.localDescription.sdp)

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.VideoFrame):
                self._last_frame = frame
                self.frames_received += 1

    def take_answer(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the tablet's SDP answer and apply it; returns the message."""
        answer = self.expect("answer", timeout)
        assert self.pc is not None, "no offer was sent"
        self._run(self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer")))
        return answer

    def received_rgb(self, x: int, y: int) -> list[int] | None:
        """A pixel of the last frame the tablet sent us (its synthetic bars), if any."""
        frame = self._last_frame
        if frame is None:
            return None
        image = frame.to_ndarray(format="rgb24")
        return [int(v) for v in image[y, x]]

    def close_peer(self) -> None:
        for task in self._tasks:
            self.loop.call_soon_threadsafe(task.cancel)
        self._tasks = []
        if self.pc is not None:
            with contextlib.suppress(Exception):
                self._run(self.pc.close(), timeout=5)
            self.pc = None

    def close(self) -> None:
        self.close_peer()
        self.ws.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(5)
