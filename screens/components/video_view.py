"""A video picture fed from a one-slot frame holder, blitted on the main thread.

The call engine decodes frames on its own threads and keeps only the latest one in a holder
whose ``get()`` returns ``(sequence, frame)`` or None (``frame``: a numpy ``(H, W, 3)`` uint8
RGB array, top row first). While ``active``, a ``Clock`` interval on the main thread polls the
holder and uploads the frame only when its sequence number changed: the engine never schedules
one callback per frame, and a slow tablet simply shows fewer frames. The texture is recreated
when the frame size changes (the sender adapts its resolution to the network).

The picture is letterboxed ("contain") on black; ``mirror`` flips it left-right, as people
expect of their own picture. When the view stops being active it drops its texture, so the
last picture of a call is never shown again.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import numpy as np
from kivy.clock import Clock
from kivy.graphics import Color, Rectangle
from kivy.graphics.texture import Texture
from kivy.properties import BooleanProperty, ListProperty, ObjectProperty
from kivy.uix.widget import Widget

log = logging.getLogger(__name__)

FRAME_INTERVAL = 1 / 30


class FrameSource(Protocol):
    """What ``VideoView.source`` must provide (``kiosk.calls``' ``LatestFrame``)."""

    def get(self) -> tuple[int, np.ndarray] | None: ...


class VideoView(Widget):
    """Shows the frames of ``source`` while ``active``; black when there is none."""

    source = ObjectProperty(None, allownone=True)
    active = BooleanProperty(False)
    mirror = BooleanProperty(False)
    texture = ObjectProperty(None, allownone=True)
    has_frame = BooleanProperty(False)
    frame_size = ListProperty([0, 0])
    background = ListProperty([0, 0, 0, 1])

    def __init__(self, **kwargs: Any) -> None:
        self._sequence: int | None = None
        self._event: Any = None
        self._bad_frame_logged = False
        # Counters for tests and benchmarks: frames uploaded and the time spent doing it.
        self.blits = 0
        self.blit_seconds = 0.0
        self.texture_creations = 0
        super().__init__(**kwargs)
        with self.canvas:
            self._background_color = Color(rgba=self.background)
            self._background = Rectangle(pos=self.pos, size=self.size)
            self._picture_color = Color(1, 1, 1, 0)
            self._picture = Rectangle(pos=self.pos, size=(0, 0))
        self.bind(pos=self._layout, size=self._layout, texture=self._layout)
        self.bind(background=self._on_background)

    def _on_background(self, *_args: Any) -> None:
        self._background_color.rgba = self.background

    def on_active(self, _instance: Any, active: bool) -> None:
        if active:
            if self._event is None:
                # A bound method that returns None: Kivy cancels an interval whose callback
                # returns False, and update() returns False whenever no new frame is ready.
                self._event = Clock.schedule_interval(self._tick, FRAME_INTERVAL)
        else:
            if self._event is not None:
                self._event.cancel()
                self._event = None
            self.clear()

    def _tick(self, _dt: float) -> None:
        self.update()

    def on_source(self, *_args: Any) -> None:
        self._sequence = None

    def clear(self) -> None:
        """Forget the current picture (the view shows its background)."""
        self._sequence = None
        self.texture = None
        self.has_frame = False
        self.frame_size = [0, 0]

    def update(self, *_args: Any) -> bool:
        """Upload the holder's latest frame if it is new; True when something was uploaded."""
        source = self.source
        if source is None:
            return False
        latest = source.get()
        if latest is None:
            return False
        sequence, frame = latest
        if sequence == self._sequence:
            return False
        started = time.perf_counter()
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            if not self._bad_frame_logged:
                self._bad_frame_logged = True
                log.warning("ignoring video frames of shape %s %s", frame.shape, frame.dtype)
            self._sequence = sequence
            return False
        height, width = int(frame.shape[0]), int(frame.shape[1])
        texture = self.texture
        if texture is None or tuple(texture.size) != (width, height):
            texture = self._new_texture(width, height)
        # The frame's top row comes first, Kivy's textures start at the bottom: the texture's
        # coordinates are flipped once at creation, so no pixel is copied to turn it over.
        data = frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)
        texture.blit_buffer(data.tobytes(), colorfmt="rgb", bufferfmt="ubyte")
        self._sequence = sequence
        self.has_frame = True
        self._picture_color.a = 1
        self.canvas.ask_update()
        self.blits += 1
        self.blit_seconds += time.perf_counter() - started
        return True

    def _new_texture(self, width: int, height: int) -> Texture:
        texture = Texture.create(size=(width, height), colorfmt="rgb", bufferfmt="ubyte")
        texture.flip_vertical()
        if self.mirror:
            texture.flip_horizontal()
        texture.mag_filter = "linear"
        texture.min_filter = "linear"
        self.texture_creations += 1
        self.frame_size = [width, height]
        self.texture = texture
        return texture

    def picture_rect(self) -> tuple[float, float, float, float]:
        """Where the picture is drawn (x, y, width, height, in the widget's coordinates)."""
        texture = self.texture
        if texture is None or self.width <= 0 or self.height <= 0:
            return (self.x, self.y, 0.0, 0.0)
        tw, th = texture.size
        scale = min(self.width / tw, self.height / th)
        w, h = tw * scale, th * scale
        return (self.x + (self.width - w) / 2, self.y + (self.height - h) / 2, w, h)

    def _layout(self, *_args: Any) -> None:
        self._background.pos = self.pos
        self._background.size = self.size
        texture = self.texture
        self._picture.texture = texture
        if texture is None:
            self._picture_color.a = 0
            self._picture.size = (0, 0)
            return
        x, y, w, h = self.picture_rect()
        self._picture.pos = (x, y)
        self._picture.size = (w, h)
