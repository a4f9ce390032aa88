"""Kiosk lockdown: the keys that must do nothing, and the staff's way out.

A resident can never leave the app: Escape (Android's back key is the same key code for Kivy),
Kivy's settings keys (F1, Android's menu key) and Alt-F4 are swallowed, and a window close
request is refused (``screens.app``). The only way out is a **staff gesture**: a finger held
still for three seconds on an invisible 2 cm square in the top-left corner of the screen
(:class:`CornerHold`), then a staff PIN (``screens.staff``).

The gesture listens on the window, before any widget, and never consumes the touch on its way
down: a resident's tap in the corner works as everywhere else. When the gesture fires, the
widgets that grabbed that touch are released without their ``on_release``, so lifting the
finger after three seconds cannot also press the button under it.
"""

from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.metrics import mm
from kivy.uix.behaviors import ButtonBehavior

HOLD_SECONDS = 3.0
ZONE_MM = 20.0
# A trembling finger drifts: leaving the zone by less than this does not cancel the hold.
DRIFT_MM = 4.0

KEY_ESCAPE = 27  # also Android's back key
KEY_F1 = 282  # Kivy opens its settings panel on F1...
KEY_MENU = 319  # ...and on Android's menu key
KEY_F4 = 285
KEY_BACK_LEGACY = 1001  # the back key as reported by older Android builds
SWALLOWED_KEYS = frozenset({KEY_ESCAPE, KEY_F1, KEY_MENU, KEY_BACK_LEGACY})

# `liens kiosk` exits with this status when staff leave the kiosk from the staff screen;
# deploy/kiosk/liens-kiosk.service lists it in RestartPreventExitStatus, so systemd does not
# bring the app straight back (a crash, any other status, still does).
STAFF_EXIT_STATUS = 75


def swallow_key(key: int, _scancode: int = 0, _codepoint: Any = None, modifiers: Any = ()) -> bool:
    """True when the window must ignore this key (bound to ``Window.on_keyboard``)."""
    if key in SWALLOWED_KEYS:
        return True
    return key == KEY_F4 and "alt" in (modifiers or ())


class CornerHold(EventDispatcher):
    """Dispatches ``on_hold`` when a finger stays ``seconds`` on the top-left ``zone_mm`` square.

    ``install(window)`` binds it to the window's touch events; ``enabled`` turns it off (for
    instance while the staff screens are shown).
    """

    __events__ = ("on_hold",)

    def __init__(
        self, *, seconds: float = HOLD_SECONDS, zone_mm: float = ZONE_MM, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds
        self.zone_mm = zone_mm
        self.enabled = True
        self._window: Any = None
        self._touch: Any = None
        self._event: Any = None

    def install(self, window: Any) -> None:
        self._window = window
        window.bind(
            on_touch_down=self._on_touch_down,
            on_touch_move=self._on_touch_move,
            on_touch_up=self._on_touch_up,
        )

    def uninstall(self) -> None:
        if self._window is not None:
            self._window.unbind(
                on_touch_down=self._on_touch_down,
                on_touch_move=self._on_touch_move,
                on_touch_up=self._on_touch_up,
            )
        self._cancel()

    def in_zone(self, x: float, y: float, margin_mm: float = 0.0) -> bool:
        """True when window coordinates (x, y) are in the corner square (plus a margin)."""
        if self._window is None:
            return False
        size = mm(self.zone_mm + margin_mm)
        return x <= size and y >= self._window.height - size

    def _on_touch_down(self, _window: Any, touch: Any) -> bool:
        if self.enabled and self._touch is None and self.in_zone(touch.x, touch.y):
            self._touch = touch
            self._event = Clock.schedule_once(self._fire, self.seconds)
        return False

    def _on_touch_move(self, _window: Any, touch: Any) -> bool:
        if touch is self._touch and not self.in_zone(touch.x, touch.y, DRIFT_MM):
            self._cancel()
        return False

    def _on_touch_up(self, _window: Any, touch: Any) -> bool:
        if touch is self._touch:
            self._cancel()
        return False

    def _cancel(self) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None
        self._touch = None

    def _fire(self, _dt: float) -> None:
        touch, self._touch, self._event = self._touch, None, None
        if touch is None or not self.enabled:
            return
        release_grabs(touch)
        self.dispatch("on_hold")

    def on_hold(self) -> None:
        """Default handler: the staff flow binds to this event."""


def release_grabs(touch: Any) -> None:
    """Let go of every widget holding ``touch``, without their ``on_release``."""
    for ref in list(getattr(touch, "grab_list", ())):
        widget = ref() if callable(ref) else ref
        if widget is None:
            continue
        touch.ungrab(widget)
        if isinstance(widget, ButtonBehavior):
            widget._do_release()
