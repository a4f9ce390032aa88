"""KivyMD's background rule, with no fill drawn while the background is see-through.

Every KivyMD widget (``BackgroundColorBehavior``: screens, box layouts, labels, scroll views)
draws a rounded rectangle of its own size in its ``md_bg_color``, transparent by default. A GPU
blends that for free; a software renderer (Mesa's llvmpipe, and a tablet's GPU short on fill
rate) does not: the home screen drew 14 million pixels a frame for its 1 million, several whole
windows of nothing. :func:`install` swaps KivyMD's rule (its ``BackgroundColorBehavior.kv``)
for the same one whose rectangle has no size while the colour is fully transparent and there is
no background image. Call it before the first KivyMD widget is built.
"""

from __future__ import annotations

from kivy.lang import Builder

KIVYMD_RULE_FILE = "BackgroundColorBehavior.kv"  # the name KivyMD 2.0 loads its rule under

RULE = """
#:import RelativeLayout kivy.uix.relativelayout.RelativeLayout


<BackgroundColorBehavior>
    canvas:
        PushMatrix
        Rotate:
            angle: self.angle
            origin: self._background_origin
        Color:
            group: "backgroundcolor-behavior-bg-color"
            rgba: self._md_bg_color
        RoundedRectangle:
            group: "Background_instruction"
            # The one change from KivyMD's rule: nothing to draw, no size.
            size: self.size if (self._md_bg_color[3] > 0 or root.background) else (0, 0)
            pos: self.pos if not isinstance(self, RelativeLayout) else (0, 0)
            radius: root.radius if root.radius else [0, 0, 0, 0]
            source: root.background
        Color:
            rgba: self.line_color if self.line_color else (0, 0, 0, 0)
        SmoothLine:
            width: root.line_width
            rounded_rectangle:
                [ \\
                0,
                0, \\
                self.width, \\
                self.height, \\
                *self.radius, \\
                ] \\
                if isinstance(self, RelativeLayout) else \\
                [ \\
                self.x,
                self.y, \\
                self.width, \\
                self.height, \\
                *self.radius, \\
                ]
        PopMatrix
"""

_RULE_FILE = "liens-BackgroundColorBehavior.kv"


def install() -> None:
    """Replace KivyMD's background rule (once per process)."""
    import kivymd.uix.behaviors.backgroundcolor_behavior  # noqa: F401  (its rule, loaded)

    if _RULE_FILE in Builder.files:
        return
    Builder.unload_file(KIVYMD_RULE_FILE)
    Builder.load_string(RULE, filename=_RULE_FILE)
