"""``Glyph``: one Material Design icon drawn by a plain Kivy label.

KivyMD's ``MDIcon`` is an ``MDLabel`` (theming, adaptive size, hover and state layers): ~4 ms
of CPU to build one here, against ~0.6 ms for a plain label, and the home builds one per tile
before its first frame (docs/kiosk.md, "Start-up"). A glyph takes its colour in ``color`` and
its size in ``font_size``, and centres itself in its box; KivyMD's icon font ("Icons", which
``import kivymd`` registers) and icon names are the same as ``MDIcon``'s.
"""

from __future__ import annotations

from typing import Any

from kivy.properties import StringProperty
from kivy.uix.label import Label
from kivymd.icon_definitions import md_icons

ICON_FONT = "Icons"  # registered by kivymd.font_definitions


class Glyph(Label):
    """A Material Design icon by name (``icon``); an unknown name draws nothing."""

    icon = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("font_name", ICON_FONT)
        kwargs.setdefault("halign", "center")
        kwargs.setdefault("valign", "middle")
        super().__init__(**kwargs)
        self.bind(size=self._fit)
        self._fit()

    def on_icon(self, _instance: Any, icon: str) -> None:
        self.text = md_icons.get(icon, "")

    def _fit(self, *_args: Any) -> None:
        self.text_size = self.size
