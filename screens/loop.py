"""Kivy's main loop waiting for work, instead of waking at the frame rate when nothing happens.

Kivy's default clock wakes its loop ``maxfps`` times a second (30 for the kiosk) whether or not
anything moves: each wake runs the clock, polls the input providers and SDL, and checks for a
redraw. On the home screen, where nothing moves for hours, that was 2.4-2.9 % of a core.

:func:`install` replaces the clock's wait (``Clock.idle``, called once a loop iteration) with one
that sleeps until the first of:

- the next clock event (the header's clock each second, an animation's next step, a
  ``Clock.schedule_once`` from the engine's or paho's thread: an incoming call);
- input: SDL's ``SDL_WaitEventTimeout`` returns as soon as a touch, a key or a window event
  is queued; Kivy's window takes it from SDL at the end of that turn (``poke``) and the next
  turn, at once, dispatches it: a touch waits less than with Kivy's own wait (up to a frame);
- ``MAX_WAIT``, a safety net.

The wait is cut in ``SLICE`` pieces: a callback another thread schedules is noticed within one
(Kivy's default clock noticed it within a frame), as is input from a provider SDL does not see
(a Linux touchscreen read by Kivy's own ``hidinput``/``mtdev`` threads). The frame cap still
holds: the loop never runs more than ``maxfps`` times a second, so an animation, or a call's
video, runs as before.

Without SDL's library (another window provider), nothing changes: Kivy's own wait stays.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SLICE = 0.05  # seconds: the longest a callback from another thread waits to be noticed
MAX_WAIT = 1.0  # seconds: the loop turns at least this often, whatever happens
MIN_SLEEP = 0.002  # seconds: less than this left, the loop just goes on
WINDOW_INPUT_EVENTS = (
    "on_mouse_down",
    "on_mouse_move",
    "on_mouse_up",
    "on_key_down",
    "on_key_up",
    "on_textinput",
    "on_resize",
    "on_show",
    "on_restore",
)


def _sdl_library() -> Any:
    """The SDL2 library Kivy's window uses (already loaded in this process), or None."""
    candidates: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                name = os.path.basename(path)
                # libSDL2-2.0.so.0 (Debian), libSDL2-2-<hash>.0.so... (Kivy's wheels), not
                # libSDL2_ttf and the like.
                if name.startswith("libSDL2-") or name.startswith("libSDL2.so"):
                    candidates.append(path)
    except OSError:
        pass
    candidates += ["libSDL2-2.0.so.0", "libSDL2.so"]
    for candidate in dict.fromkeys(candidates):
        try:
            library = ctypes.CDLL(candidate)
            wait = library.SDL_WaitEventTimeout
        except (OSError, AttributeError):
            continue
        wait.argtypes = [ctypes.c_void_p, ctypes.c_int]
        wait.restype = ctypes.c_int
        return library
    return None


class WaitingLoop:
    """The replacement of ``Clock.idle``: see the module."""

    def __init__(
        self,
        clock: Any,
        wait_for_input: Callable[[float], bool],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clock = clock
        self.wait_for_input = wait_for_input  # True: input is queued
        self.sleep = sleep
        self.wakes = 0  # loop iterations run (for the tests and the benchmark)
        # Input Kivy's window took from SDL at the end of a turn (after this wait): dispatched
        # at the next turn, which must not wait for a clock event.
        self.input_taken = False
        self.woke_for_input = False

    def poke(self, *_args: Any) -> None:
        """Input was taken from SDL: the next turn comes after the frame cap, not later."""
        self.input_taken = True

    def idle(self) -> float:
        clock = self.clock
        fps = clock._max_fps
        frame = 1.0 / fps if fps > 0 else 0.0
        last = clock._last_tick
        # The turn that input woke only let Kivy's window take it from SDL: the touch is
        # dispatched in this one, without waiting out the frame cap again.
        woke_for_input, self.woke_for_input = self.woke_for_input, False
        while not (woke_for_input and self.input_taken):
            now = clock.time()
            cap_left = last + frame - now
            if cap_left > MIN_SLEEP:
                # The frame cap, as Kivy's own wait.
                self.sleep(cap_left)
                continue
            if self.input_taken:
                break
            due = min(clock.get_min_timeout(), last + MAX_WAIT)
            left = due - now
            if left <= MIN_SLEEP:
                break
            if self.wait_for_input(min(left, SLICE)):
                self.woke_for_input = True
                break
        self.input_taken = False
        now = clock.time()
        # What Kivy's ClockBase.idle does once its wait is over.
        clock._dt = now - clock._last_tick
        clock._last_tick = now
        self.wakes += 1
        return float(now)


_installed: WaitingLoop | None = None


def install() -> WaitingLoop | None:
    """Make Kivy's clock wait for work (once per process); None when SDL is not there."""
    global _installed
    if _installed is not None:
        return _installed
    from kivy.clock import Clock

    library = _sdl_library()
    if library is None:
        log.info("SDL2 not found: Kivy's loop keeps its own wait")
        return None
    sdl_wait = library.SDL_WaitEventTimeout

    def wait_for_input(seconds: float) -> bool:
        # Pumps SDL's events without removing them (Kivy's window takes them next); ctypes
        # releases the GIL meanwhile. 1: something is queued.
        return bool(sdl_wait(None, max(1, int(seconds * 1000))))

    loop = WaitingLoop(Clock, wait_for_input)
    from kivy.core.window import Window

    # What Kivy's window dispatches as it takes SDL's events (after the wait): a touch on a
    # Linux tablet comes as the mouse (SDL turns touches into mouse events), keys as keys.
    for name in WINDOW_INPUT_EVENTS:
        Window.fbind(name, loop.poke)
    # An instance attribute: ClockBase.tick calls self.idle().
    Clock.idle = loop.idle
    _installed = loop
    return loop
