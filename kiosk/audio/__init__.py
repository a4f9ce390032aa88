"""The tablet's audio path during a call (docs/audio.md): loud, clear and without echo.

* :mod:`kiosk.audio.dsp` — the pure signal processing: speech-band equaliser, gain, limiter,
  a streaming resampler and 10 ms framing (numpy, scipy, PyAV);
* :mod:`kiosk.audio.hearing` — each resident's hearing setting (volume boost, speech boost),
  kept in the tablet's local preferences (``hearing.json`` beside ``preferences.json``);
* :mod:`kiosk.audio.chain` — one call's processing chain: what the relative says goes through
  the resident's equaliser, gain and limiter to the speaker, and is the echo canceller's
  reference; the microphone goes through Speex's linear echo canceller (:mod:`kiosk.audio.speex`)
  and the WebRTC audio processing module (echo cancellation, noise suppression, automatic gain)
  into the call, crossfading to Speex's output alone while the resident speaks over the
  relative (:mod:`kiosk.audio.doubletalk`);
* :mod:`kiosk.audio.devices` — which microphone and speaker the tablet has, whether PipeWire
  already cancels echo, and the one duplex stream (PortAudio) that carries both;
* :mod:`kiosk.audio.live` — the chain of the call in progress, for the in-call volume buttons.

Everything runs on 10 ms frames of 48 kHz mono 16-bit audio, the rate of WebRTC's Opus. Nothing
here imports Kivy or aiortc: the aiortc tracks are in :mod:`kiosk.calls.audio`.
"""

from __future__ import annotations

RATE = 48000
FRAME_MS = 10
FRAME_SAMPLES = RATE * FRAME_MS // 1000

__all__ = ["FRAME_MS", "FRAME_SAMPLES", "RATE"]
