"""KivyMD's Material colour scheme for the kiosk's theme, computed once instead of at each start.

``MDApp`` computes its 59 scheme colours (``primaryColor``, ``surfaceColor``...) at every start
with materialyoucolor's HCT solver, in pure Python: 0.3 s on this project's test machine, before
the first frame. The kiosk's theme never changes (light, KivyMD's default blue, tonal spot, no
dynamic colour), so ``scheme.json`` beside this module holds the result for it and
:class:`KioskThemeManager` sets those colours instead. Any other theme, or another KivyMD
version, falls back to KivyMD's own computation.

The UI tests compare the stored colours with a fresh computation (``tests/ui/driver.py``,
scenario "home"); after a KivyMD or materialyoucolor upgrade, regenerate the file under a
display with ``python -m screens.components.scheme``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import kivymd
from kivymd.theming import ThemeManager

log = logging.getLogger(__name__)

SCHEME_FILE = Path(__file__).with_name("scheme.json")


def scheme_key(theme: ThemeManager) -> list[Any]:
    """What the scheme's colours depend on (besides materialyoucolor's code)."""
    return [
        kivymd.__version__,
        str(theme.primary_palette),
        str(theme.theme_style),
        str(theme.dynamic_scheme_name),
        float(theme.dynamic_scheme_contrast),
    ]


def scheme_colours(theme: ThemeManager) -> dict[str, list[float]]:
    """The scheme colours ``theme`` holds now, by name (without the ``Color`` suffix)."""
    from materialyoucolor.dynamiccolor.color_spec import COLOR_NAMES

    return {name: [float(c) for c in getattr(theme, f"{name}Color")] for name in COLOR_NAMES}


def _stored(key: list[Any]) -> dict[str, list[float]] | None:
    try:
        stored = json.loads(SCHEME_FILE.read_text())
    except (OSError, ValueError):
        log.warning("no stored colour scheme in %s: computing it", SCHEME_FILE)
        return None
    if stored.get("key") != key:
        return None
    colours = stored.get("colours")
    return colours if isinstance(colours, dict) else None


class KioskThemeManager(ThemeManager):  # type: ignore[misc]
    """KivyMD's theme manager, with the kiosk's scheme read from ``scheme.json``."""

    def _set_application_scheme(self, color: str = "blue") -> None:
        colours = None if self.dynamic_color else _stored(scheme_key(self))
        if colours is None:
            super()._set_application_scheme(color)
            return
        for name, value in colours.items():
            setattr(self, f"{name}Color", value)
        # As ThemeManager._set_color_names ends.
        self.disabledTextColor = self._get_disabled_hint_text_color()
        if self.on_colors:
            self.on_colors()


def computed_scheme(theme_style: str = "Light") -> tuple[list[Any], dict[str, list[float]]]:
    """The key and colours KivyMD computes for the kiosk's theme (needs Kivy's window)."""
    theme = ThemeManager()
    theme.theme_style = theme_style
    theme.set_colors()
    return scheme_key(theme), scheme_colours(theme)


def main() -> None:
    key, colours = computed_scheme()
    lines = [f"  {json.dumps(name)}: {json.dumps(value)}" for name, value in colours.items()]
    body = ",\n".join(lines)
    SCHEME_FILE.write_text(f'{{\n "key": {json.dumps(key)},\n "colours": {{\n{body}\n }}\n}}\n')


if __name__ == "__main__":
    main()
