"""The tablet's microphone and speaker: what there is, who cancels echo, and the duplex stream.

* :func:`probe` says whether a microphone and a speaker were found (PortAudio's device list, or
  ALSA's ``/proc/asound/pcm`` when PortAudio is not installed; ``None`` when neither can tell,
  e.g. on Android) and whether PipeWire's echo canceller is the default source
  (``deploy/kiosk/50-liens-echo-cancel.conf``), in which case the app does not cancel twice.
* :class:`DuplexDevice` opens the microphone and the speaker as **one** PortAudio stream with
  10 ms blocks, so that each microphone frame is processed against the very frame the speaker
  plays at the same moment; the stream runs at 48 kHz, or at the device's own rate with the
  resampling done here.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk.audio import FRAME_MS, FRAME_SAMPLES, RATE

if TYPE_CHECKING:  # loaded with the call's audio, not by the staff screen's probe
    from kiosk.audio.chain import AudioChain

log = logging.getLogger(__name__)

# The names PipeWire's echo-cancel module gives its nodes: ours (deploy/kiosk/), and the
# module's defaults ("echo-cancel-source"), as pactl and pw-dump show them.
ECHO_CANCEL_MARKERS = ("echo_cancel", "echo-cancel", "echocancel")
TOOL_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class DeviceState:
    """What the tablet found; ``None`` means "could not be checked on this system"."""

    microphone: bool | None
    speaker: bool | None
    system_echo_cancel: bool = False
    backend: str = "none"  # "portaudio" | "alsa" | "none"
    default_source: str = ""

    @property
    def missing(self) -> bool:
        return self.microphone is False or self.speaker is False

    def as_dict(self) -> dict[str, Any]:
        return {
            "microphone": self.microphone,
            "speaker": self.speaker,
            "system_echo_cancel": self.system_echo_cancel,
            "backend": self.backend,
            "default_source": self.default_source,
        }


def is_echo_cancel_node(name: str | None) -> bool:
    """Whether a PipeWire/PulseAudio source name is an echo-cancelled one."""
    lowered = (name or "").lower()
    return any(marker in lowered for marker in ECHO_CANCEL_MARKERS)


def default_source_from_pw_dump(objects: Any) -> str:
    """The default audio source's node name in ``pw-dump``'s JSON (its "default" metadata)."""
    if not isinstance(objects, list):
        return ""
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("type") != "PipeWire:Interface:Metadata":
            continue
        if (obj.get("props") or {}).get("metadata.name") != "default":
            continue
        for entry in obj.get("metadata") or []:
            if isinstance(entry, dict) and entry.get("key") == "default.audio.source":
                value = entry.get("value")
                if isinstance(value, dict):
                    return str(value.get("name") or "")
                if isinstance(value, str):
                    try:
                        return str(json.loads(value).get("name") or "")
                    except (ValueError, AttributeError):
                        return value
    return ""


def _run(args: list[str]) -> str | None:
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def default_source() -> str:
    """The default audio source's name from ``pactl`` (pipewire-pulse) or ``pw-dump``."""
    out = _run(["pactl", "get-default-source"])
    if out and out.strip():
        return out.strip()
    out = _run(["pw-dump"])
    if out:
        try:
            return default_source_from_pw_dump(json.loads(out))
        except ValueError:
            return ""
    return ""


def _portaudio() -> Any | None:
    try:
        import sounddevice
    except (ImportError, OSError):  # OSError: the PortAudio library is not installed
        return None
    return sounddevice


def _alsa_devices() -> tuple[bool | None, bool | None]:
    try:
        text = Path("/proc/asound/pcm").read_text()
    except OSError:
        return None, None
    return "capture" in text, "playback" in text


def probe() -> DeviceState:
    """The tablet's microphone and speaker, and whether PipeWire already cancels echo."""
    source = default_source()
    echo = is_echo_cancel_node(source)
    sd = _portaudio()
    if sd is not None:
        try:
            devices = sd.query_devices()
        except Exception as exc:  # PortAudio could not initialise
            log.info("PortAudio could not list devices: %s", exc)
        else:
            entries = list(devices) if not isinstance(devices, dict) else [devices]
            inputs = any(int(d.get("max_input_channels", 0)) > 0 for d in entries)
            outputs = any(int(d.get("max_output_channels", 0)) > 0 for d in entries)
            return DeviceState(inputs, outputs, echo, "portaudio", source)
    microphone, speaker = _alsa_devices()
    backend = "alsa" if microphone is not None else "none"
    return DeviceState(microphone, speaker, echo, backend, source)


class DuplexDevice:
    """The microphone and the speaker as one PortAudio stream of 10 ms blocks, driving ``chain``.

    PortAudio calls back from its own real-time thread with one block of microphone samples and
    a block to fill for the speaker; each 10 ms step of the chain runs there. ``on_frame`` is
    called after each step (the call's track wakes up to send the processed microphone).
    """

    def __init__(self, chain: AudioChain, on_frame: Callable[[], None] | None = None) -> None:
        from kiosk.audio.dsp import Framer, Resampler

        sd = _portaudio()
        if sd is None:
            raise OSError("PortAudio is not installed (apt-get install libportaudio2)")
        self.chain = chain
        self.on_frame = on_frame
        self.rate = RATE
        try:
            sd.check_input_settings(samplerate=RATE, channels=1, dtype="int16")
            sd.check_output_settings(samplerate=RATE, channels=1, dtype="int16")
        except Exception:
            # The device does not take 48 kHz: open it at its own rate and resample here.
            self.rate = int(sd.query_devices(kind="input")["default_samplerate"])
        self.block = self.rate * FRAME_MS // 1000
        self._mic_resampler = Resampler(RATE)
        self._speaker_resampler = Resampler(self.rate)
        self._mic = Framer(FRAME_SAMPLES)
        self._speaker = Framer(self.block)
        self._stream = sd.RawStream(
            samplerate=self.rate,
            blocksize=self.block,
            channels=1,
            dtype="int16",
            latency="low",
            callback=self._callback,
        )
        latency = self._stream.latency
        total = sum(latency) if isinstance(latency, tuple) else latency
        self.latency_ms = round(1000 * float(total))
        self.xruns = 0

    def _callback(self, indata: Any, outdata: Any, frames: int, _time: Any, status: Any) -> None:
        import numpy as np

        if status:
            self.xruns += 1
        mic = np.frombuffer(indata, dtype=np.int16)
        self._mic.push(self._mic_resampler.pcm(mic, self.rate))
        while (frame := self._mic.pop()) is not None:
            speaker = self.chain.tick(frame)
            self._speaker.push(self._speaker_resampler.pcm(speaker, RATE))
            if self.on_frame is not None:
                self.on_frame()
        out = self._speaker.pop()
        if out is None or out.size != frames:
            out = np.zeros(frames, dtype=np.int16)
        outdata[:] = out.tobytes()

    def start(self) -> None:
        self._stream.start()

    def stop(self) -> None:
        try:
            self._stream.stop()
        finally:
            self._stream.close()
