"""The call's audio as aiortc sees it: the processed microphone track and the speaker's sink.

:func:`open_call_audio` builds one call's :class:`~kiosk.audio.chain.AudioChain` with the
resident's hearing setting and the tablet's volume, and its clock:

* **devices** — a :class:`~kiosk.audio.devices.DuplexDevice` (PortAudio) ticks the chain every
  10 ms from the real microphone and plays the relative's voice on the real speaker;
* **synthetic** (tests, ``--headless``, no sound card) — the synthetic microphone track (the
  440 Hz tone of :mod:`kiosk.calls.media`) ticks the chain as it produces its 20 ms frames, and
  what the chain would play goes nowhere. Same chain, same counters: the end-to-end call test
  exercises it.

The relative's decoded audio reaches :meth:`CallAudio.play` (the engine's audio sink) and from
there the playout buffer; the track the tablet sends is :class:`ProcessedMicrophoneTrack`.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from kiosk.audio import FRAME_SAMPLES, RATE, hearing, live
from kiosk.audio.chain import AudioChain
from kiosk.audio.devices import DeviceState, DuplexDevice, probe
from kiosk.audio.dsp import Framer, Resampler

log = logging.getLogger(__name__)

PTIME_FRAMES = 2  # 20 ms per RTP packet, as Opus in WebRTC: two 10 ms steps of the chain


class ProcessedMicrophoneTrack(MediaStreamTrack):
    """What the tablet sends: the microphone after echo cancellation, noise suppression, gain.

    With a ``source`` track (the synthetic microphone) each ``recv`` pulls the source, runs the
    chain on it and returns the result; without one, the frames come from the duplex device's
    thread and ``recv`` waits for them.
    """

    kind = "audio"

    def __init__(self, chain: AudioChain, source: MediaStreamTrack | None = None) -> None:
        super().__init__()
        self.chain = chain
        self._source = source
        self._resampler = Resampler(RATE)
        self._framer = Framer(FRAME_SAMPLES)
        self._pts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()

    def frame_ready(self) -> None:
        """A processed frame is waiting (called from the device's thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._ready.set)

    async def _fill_from_source(self, source: MediaStreamTrack) -> None:
        while self.chain.outgoing_frames() < PTIME_FRAMES:
            frame = await source.recv()
            if not isinstance(frame, av.AudioFrame):
                continue
            self._framer.push(self._resampler.frame(frame))
            while (pcm := self._framer.pop()) is not None:
                self.chain.tick(pcm)  # no device: what the speaker would play goes nowhere

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._source is not None:
            await self._fill_from_source(self._source)
        else:
            self._loop = asyncio.get_running_loop()
            while self.chain.outgoing_frames() < PTIME_FRAMES:
                self._ready.clear()
                if self.chain.outgoing_frames() >= PTIME_FRAMES:
                    break
                await self._ready.wait()
                if self.readyState != "live":
                    raise MediaStreamError
        parts = [self.chain.pop_outgoing() for _ in range(PTIME_FRAMES)]
        samples = np.concatenate([p for p in parts if p is not None])
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += samples.size
        return frame

    def stop(self) -> None:
        super().stop()
        if self._source is not None:
            self._source.stop()
        self.frame_ready()  # a recv() waiting for the device returns


class CallAudio:
    """One call's audio: the chain, the track it sends, and the device it runs on, if any."""

    def __init__(
        self,
        chain: AudioChain,
        track: ProcessedMicrophoneTrack,
        device: DuplexDevice | None,
        devices: DeviceState,
    ) -> None:
        self.chain = chain
        self.track = track
        self.device = device
        self.devices = devices
        self._stopped = False

    @property
    def description(self) -> str:
        where = "microphone and speaker" if self.device is not None else "no sound device"
        cancel = "PipeWire's echo canceller" if not self.chain.cancel_echo else "echo cancelled"
        return f"{where}, {cancel}"

    @property
    def frames_processed(self) -> int:
        return self.chain.stats.frames

    def play(self, frame: av.AudioFrame) -> None:
        """A decoded frame of the relative's voice (the engine's audio sink)."""
        if not self._stopped:
            self.chain.push_far(frame)

    def stats(self) -> dict[str, Any]:
        data = self.chain.stats_dict()
        data["device"] = self.device is not None
        if self.device is not None:
            data["device_rate"] = self.device.rate
            data["device_latency_ms"] = self.device.latency_ms
        return data

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        live.detach(self.chain)
        if self.device is not None:
            try:
                self.device.stop()
            except Exception:
                log.exception("could not close the audio device")
        self.track.stop()


def open_call_audio(mode: str, source: MediaStreamTrack, *, resident_id: str = "") -> CallAudio:
    """The audio of a call for ``resident_id``; ``source`` is the synthetic microphone, used when
    ``mode`` is "synthetic" or no device is found in "auto" (blocking: opens a device)."""
    devices = probe() if mode != "synthetic" else DeviceState(None, None)
    try:
        profile = hearing.profiles().get(resident_id)
        volume = hearing.tablet_volume()
    except OSError:
        log.exception("hearing settings unreadable: defaults used")
        profile, volume = hearing.HearingProfile(), 1.0
    chain = AudioChain(profile=profile, volume=volume, cancel_echo=not devices.system_echo_cancel)
    device: DuplexDevice | None = None
    if mode != "synthetic" and devices.microphone and devices.speaker:
        try:
            track = ProcessedMicrophoneTrack(chain)
            device = DuplexDevice(chain, on_frame=track.frame_ready)
            chain.set_stream_delay(device.latency_ms)
            device.start()
        except Exception as exc:
            if mode == "devices":
                raise
            log.info("no usable duplex audio device (%s): synthetic audio", exc)
            device = None
    elif mode == "devices":
        raise OSError("no microphone or no speaker found")
    if device is None:
        track = ProcessedMicrophoneTrack(chain, source)
    else:
        source.stop()
    live.attach(chain, resident_id)
    audio = CallAudio(chain, track, device, devices)
    log.info("call audio: %s", audio.description)
    return audio
