"""The in-call screen: the relative's video over the whole screen, a small picture of oneself in
a corner, one big red "Hang up" (at least 3 cm each way), and the resident's own volume: a big
"+" ("Plus fort") and "−" ("Moins fort") on the left edge with the level between them.

The app sets ``remote_source``/``local_source`` (the core's one-slot frame holders) and
``contact_name``; the videos run only while the screen is shown. Touching "Hang up" dispatches
``on_hang_up_requested``. ``warning`` ("one_minute" before the call's maximum duration) shows
"One minute left" in large type over the video.

The volume buttons dispatch ``on_volume_requested`` with +1 or −1 (one 3 dB step of the
resident's boost, docs/audio.md); whoever handles it sets ``volume_level`` (0 to
``volume_levels``), which the bars and the sentence under them show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.graphics import Color, Rectangle
from kivy.metrics import cm, dp, mm
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.widget import Widget

from kiosk.i18n import _
from screens.call import colours
from screens.call.common import CallScreen
from screens.call.sentences import connecting_text, warning_text
from screens.components import video_view  # noqa: F401  (registers VideoView for incall.kv)

KV_FILE = Path(__file__).with_suffix(".kv")

HANG_UP_WIDTH = max(cm(3), dp(300))  # wide enough for the word at NAME_SP
HANG_UP_HEIGHT = max(cm(3), dp(128))
SELF_VIEW_WIDTH = dp(240)
# The volume buttons: at least 18 mm each way (issue 8; 20 mm for a margin), wider than tall.
VOLUME_BUTTON_HEIGHT = max(mm(20), dp(110))
VOLUME_BOX_WIDTH = max(mm(18) + dp(24), dp(190))
VOLUME_BARS_OFF = (0.45, 0.45, 0.45, 1)


class VolumeBars(Widget):
    """The volume as rising bars: one more lit bar per step, the first always lit (normal)."""

    level = NumericProperty(0)
    levels = NumericProperty(4)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bind(pos=self._draw, size=self._draw, level=self._draw, levels=self._draw)

    def lit(self) -> int:
        """How many bars are lit (1 at the normal volume, ``levels + 1`` at the loudest)."""
        return int(max(0, min(self.levels, self.level))) + 1

    def _draw(self, *_args: Any) -> None:
        self.canvas.clear()
        count = int(self.levels) + 1
        gap = dp(6)
        width = (self.width - gap * (count - 1)) / count
        with self.canvas:
            for i in range(count):
                Color(*(colours.ON_VIDEO if i < self.lit() else VOLUME_BARS_OFF))
                height = self.height * (i + 1) / count
                Rectangle(pos=(self.x + i * (width + gap), self.y), size=(width, height))


def volume_sentence(level: int, levels: int) -> str:
    """The level in words under the bars."""
    if level <= 0:
        return _("Normal sound")
    if level >= levels:
        return _("Loudest")
    return _("Louder +{count}").format(count=level)


class InCallScreen(CallScreen):
    """While the resident and the relative see each other."""

    __events__ = ("on_hang_up_requested", "on_volume_requested")

    contact_name = StringProperty("")
    remote_source = ObjectProperty(None, allownone=True)
    local_source = ObjectProperty(None, allownone=True)
    video_active = BooleanProperty(False)
    waiting_text = StringProperty("")
    warning = StringProperty("")
    warning_text = StringProperty("")
    volume_level = NumericProperty(0)
    volume_levels = NumericProperty(4)
    volume_text = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bind(
            contact_name=self._update_texts,
            warning=self._update_texts,
            volume_level=self._update_texts,
            volume_levels=self._update_texts,
        )
        self._update_texts()

    def refresh_texts(self) -> None:
        self._update_texts()

    def _update_texts(self, *_args: Any) -> None:
        self.waiting_text = connecting_text(self.contact_name)
        self.warning_text = warning_text(self.warning or None)
        self.volume_text = volume_sentence(int(self.volume_level), int(self.volume_levels))

    def on_pre_enter(self, *args: Any) -> None:
        super().on_pre_enter(*args)
        self.video_active = True

    def on_leave(self, *_args: Any) -> None:
        # Stops the videos and drops their textures: no picture of this call stays in memory.
        self.video_active = False

    def hang_up_released(self) -> None:
        if self.accepts_taps():
            self.dispatch("on_hang_up_requested")

    def volume_released(self, step: int) -> None:
        if self.accepts_taps():
            self.dispatch("on_volume_requested", step)

    def on_hang_up_requested(self) -> None:
        """Default handler: the app binds to this event."""

    def on_volume_requested(self, step: int) -> None:
        """Default handler: ``screens.staff.hearing.HearingFlow`` binds to this event."""
