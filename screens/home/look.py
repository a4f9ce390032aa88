"""The two looks of the home: senior (light, bold, centred) and youth (dark, calm, not childish).

The senior look is ``screens.components.palette``'s; the youth look is a dark slate with a teal
accent and regular-weight, left-aligned names, the kind of screen a 15-year-old already uses.
Every text/background pair here is listed in ``TEXT_PAIRS`` and reaches 7:1 (WCAG AAA).
"""

from __future__ import annotations

from screens.components import palette
from screens.components.palette import Rgba, hex_rgba

YOUTH_BACKGROUND = hex_rgba("#0F1720")
YOUTH_INK = hex_rgba("#F3F6F9")
YOUTH_INK_SOFT = hex_rgba("#C9D3DD")
YOUTH_TILE = hex_rgba("#1A2530")
YOUTH_TILE_PRESSED = hex_rgba("#2B3C4D")
YOUTH_TILE_BORDER = hex_rgba("#5FD4C0")
YOUTH_ACCENT = hex_rgba("#5FD4C0")
YOUTH_ON_ACCENT = hex_rgba("#0B1419")
YOUTH_ACCENT_PRESSED = hex_rgba("#9BE7DA")
YOUTH_PLACEHOLDER = hex_rgba("#263D4E")  # darker than the tile: ≥ 7:1 under the night shade
YOUTH_LATER_TILE = hex_rgba("#131C25")
YOUTH_NOTICE = hex_rgba("#3A2F0B")
YOUTH_ON_NOTICE = hex_rgba("#FFE9A8")
YOUTH_ERROR = hex_rgba("#FFC9C0")

LATER_TILE = hex_rgba("#E3E5E9")  # senior, outside the allowed hours: greyed, still ≥ 7:1
LATER_ICON = hex_rgba("#2E3440")
PHOTO_LATER_OPACITY = 0.35
# Over the home at night: light, so the tiles' text pairs stay ≥ 7:1 under it; the real dimming
# is the screen's brightness (NIGHT_BRIGHTNESS), which keeps contrast.
NIGHT_SHADE = (0.0, 0.0, 0.0, 0.12)
NIGHT_BRIGHTNESS = 0.35  # what the lockdown's brightness control applies at night (0-1)

TEXT_PAIRS: dict[str, tuple[Rgba, Rgba]] = {
    "youth body": (YOUTH_INK, YOUTH_BACKGROUND),
    "youth tile name": (YOUTH_INK, YOUTH_TILE),
    "youth tile name pressed": (YOUTH_INK, YOUTH_TILE_PRESSED),
    "youth tile relation": (YOUTH_INK_SOFT, YOUTH_TILE),
    "youth initials": (YOUTH_INK, YOUTH_PLACEHOLDER),
    "youth button": (YOUTH_ON_ACCENT, YOUTH_ACCENT),
    "youth button pressed": (YOUTH_ON_ACCENT, YOUTH_ACCENT_PRESSED),
    "youth later tile": (YOUTH_INK_SOFT, YOUTH_LATER_TILE),
    "youth notice": (YOUTH_ON_NOTICE, YOUTH_NOTICE),
    "youth error": (YOUTH_ERROR, YOUTH_BACKGROUND),
    "senior later tile": (palette.INK, LATER_TILE),
    # The state badge (clock, no network) on a tile's photo.
    "senior state badge": (LATER_ICON, palette.TILE),
    "youth state badge": (YOUTH_BACKGROUND, YOUTH_INK),
}


def tile_colours(look: str, availability: str, pressed: bool) -> dict[str, Rgba]:
    """The colours of one contact tile, for its look and state."""
    later = availability != "available"
    if look == "youth":
        return {
            "background": YOUTH_TILE_PRESSED
            if pressed
            else (YOUTH_LATER_TILE if later else YOUTH_TILE),
            "border": YOUTH_INK if pressed else (YOUTH_INK_SOFT if later else YOUTH_TILE_BORDER),
            "name": YOUTH_INK_SOFT if later else YOUTH_INK,
            "relation": YOUTH_INK_SOFT,
            "placeholder": YOUTH_PLACEHOLDER,
            "on_placeholder": YOUTH_INK,
            "icon": YOUTH_BACKGROUND,
            "badge": YOUTH_INK,
        }
    return {
        "background": palette.TILE_PRESSED if pressed else (LATER_TILE if later else palette.TILE),
        "border": palette.INK if pressed else palette.TILE_BORDER,
        "name": palette.INK,
        "relation": palette.INK_SOFT,
        "placeholder": palette.PLACEHOLDER,
        "on_placeholder": palette.ON_PLACEHOLDER,
        "icon": LATER_ICON,
        "badge": palette.TILE,
    }
