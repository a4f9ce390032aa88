"""The colours and sizes of the whole app, chosen for residents with poor sight and tremor.

Every text/background pair used on a resident-facing screen is listed in ``TEXT_PAIRS`` and
tested to reach a WCAG contrast of at least 7:1 (level AAA).
"""

from __future__ import annotations

from kivy.metrics import dp, mm, sp

Rgba = tuple[float, float, float, float]


def hex_rgba(code: str) -> Rgba:
    """``"#RRGGBB"`` as an RGBA tuple of floats."""
    code = code.lstrip("#")
    r, g, b = (int(code[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return (r, g, b, 1.0)


BACKGROUND = hex_rgba("#F7F5F0")
INK = hex_rgba("#14171F")
INK_SOFT = hex_rgba("#2E3440")  # secondary lines (relation): still ≥ 7:1 on white
TILE = hex_rgba("#FFFFFF")
TILE_PRESSED = hex_rgba("#D6E2F5")
TILE_BORDER = hex_rgba("#5A6275")
PLACEHOLDER = hex_rgba("#1E3A5F")
ON_PLACEHOLDER = hex_rgba("#FFFFFF")
PRIMARY = hex_rgba("#0B3D91")
PRIMARY_PRESSED = hex_rgba("#062457")
ON_PRIMARY = hex_rgba("#FFFFFF")
SECONDARY = hex_rgba("#E1E6EE")
SECONDARY_PRESSED = hex_rgba("#BFC8D6")
ON_SECONDARY = INK
DISABLED = hex_rgba("#8A93A3")
ON_DISABLED = hex_rgba("#FFFFFF")
NOTICE = hex_rgba("#FFF1C2")
ON_NOTICE = INK
ERROR_INK = hex_rgba("#8A1C1C")

# (text, background) pairs shown to residents and staff.
TEXT_PAIRS: dict[str, tuple[Rgba, Rgba]] = {
    "body": (INK, BACKGROUND),
    "tile name": (INK, TILE),
    "tile name pressed": (INK, TILE_PRESSED),
    "tile relation": (INK_SOFT, TILE),
    "initials": (ON_PLACEHOLDER, PLACEHOLDER),
    "primary button": (ON_PRIMARY, PRIMARY),
    "primary button pressed": (ON_PRIMARY, PRIMARY_PRESSED),
    "secondary button": (ON_SECONDARY, SECONDARY),
    "secondary button pressed": (ON_SECONDARY, SECONDARY_PRESSED),
    "notice": (ON_NOTICE, NOTICE),
    "error": (ERROR_INK, BACKGROUND),
}


def relative_luminance(color: Rgba) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in color[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: Rgba, b: Rgba) -> float:
    """WCAG 2 contrast ratio between two colours (1 to 21)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# Sizes. A touch target is at least 18 mm on the real screen (mm() follows the screen's dpi);
# dp() keeps things generous on screens that report a low dpi, such as Xvfb.
TOUCH_MIN = max(mm(18), dp(96))
BODY_SP = sp(28)
NAME_SP = sp(40)
HEADING_SP = sp(48)
TIME_SP = sp(72)
DATE_SP = sp(40)
INITIALS_SP = sp(96)
KEY_SP = sp(48)
CODE_SP = sp(64)
