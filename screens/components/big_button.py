"""A large, high-contrast button with a text label (at least 18 mm high)."""

from __future__ import annotations

from kivy.properties import OptionProperty, StringProperty
from kivymd.uix.card import MDCard


class BigButton(MDCard):
    """A button residents and staff can hit with a trembling finger.

    ``kind`` is "primary" (dark blue, white text) or "secondary" (light grey, dark text).
    It dispatches ``on_release`` like any Kivy button.
    """

    text = StringProperty("")
    kind = OptionProperty("primary", options=("primary", "secondary"))
