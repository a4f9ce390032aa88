"""A linear echo canceller in front of WebRTC's: SpeexDSP's MDF filter, through ctypes.

WebRTC's AEC3 removes the echo well (over 40 dB in ``bench/echo.py``) but, when the resident and
the relative speak at once, its suppressor turns the resident down too (about -6 dB, a
correlation of 0.74–0.78 with their clean voice). Speex's multidelay block frequency-domain
filter (MDF, Valin's variable step size, robust to double talk) is purely linear: it subtracts
its estimate of the echo and never touches the rest. With it first, AEC3 has much less echo to
suppress, and the resident comes through (0.86) while the echo still loses 29–34 dB; in double
talk the chain sends this filter's output rather than AEC3's (:mod:`kiosk.audio.doubletalk`:
0.93).

Debian's ``libspeexdsp1`` (SYSTEM_PACKAGES; ``deploy/kiosk/install.sh``); without it the chain
runs AEC3 alone (:func:`available`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Any

import numpy as np

from kiosk.audio import FRAME_SAMPLES, RATE

log = logging.getLogger(__name__)

# The filter covers this much of the room: the sound card's and the room's delays, and the tail
# of the room's echo (RT60 of a living room ~ 0.3 s).
TAIL_MS = 300
_SET_SAMPLING_RATE = 24  # SPEEX_ECHO_SET_SAMPLING_RATE

_lock = threading.Lock()
_lib: Any = None
_loaded = False


def _library() -> Any:
    global _lib, _loaded
    with _lock:
        if _loaded:
            return _lib
        _loaded = True
        name = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            log.info("libspeexdsp not found: WebRTC's echo canceller works alone")
            return None
        lib.speex_echo_state_init.restype = ctypes.c_void_p
        lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
        lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p] + [ctypes.c_void_p] * 3
        lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        _lib = lib
        return lib


def available() -> bool:
    return _library() is not None


class LinearEchoFilter:
    """Speex's MDF echo canceller on 10 ms int16 frames (not thread-safe: the chain locks)."""

    def __init__(
        self, rate: int = RATE, frame: int = FRAME_SAMPLES, tail_ms: int = TAIL_MS
    ) -> None:
        lib = _library()
        if lib is None:
            raise OSError("libspeexdsp is not installed (apt-get install libspeexdsp1)")
        self._lib = lib
        self.frame = frame
        self._state = lib.speex_echo_state_init(frame, rate * tail_ms // 1000)
        if not self._state:
            raise OSError("speex_echo_state_init failed")
        sampling_rate = ctypes.c_int(rate)
        lib.speex_echo_ctl(self._state, _SET_SAMPLING_RATE, ctypes.byref(sampling_rate))

    def process(self, microphone: np.ndarray, speaker: np.ndarray) -> np.ndarray:
        """The microphone frame minus the filter's estimate of the speaker's echo in it."""
        near = np.ascontiguousarray(microphone, dtype=np.int16)
        far = np.ascontiguousarray(speaker, dtype=np.int16)
        if near.size != self.frame or far.size != self.frame:
            raise ValueError(f"frames must be {self.frame} samples")
        out = np.empty_like(near)
        self._lib.speex_echo_cancellation(
            self._state, near.ctypes.data, far.ctypes.data, out.ctypes.data
        )
        return out

    def close(self) -> None:
        if self._state:
            self._lib.speex_echo_state_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
