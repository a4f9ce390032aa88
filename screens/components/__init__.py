"""The few widgets the whole app is built from, so its look changes in one place.

``BigTile`` is a contact's photo (or initials) with the name under it; ``BigButton`` is a
large, high-contrast button. Both are KivyMD cards underneath: KivyMD API changes touch only
``screens/components/``. ``Glyph`` is a Material icon on a plain Kivy label (cheaper to build
than KivyMD's ``MDIcon``; for widgets built before the first frame).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from kivy.lang import Builder

from screens.components.big_button import BigButton
from screens.components.big_tile import BigTile
from screens.components.glyph import Glyph

# BigButton's rule: the home's first frame may show one (a youth's "Ask for a contact"). BigTile's
# is loaded with the picker, the only screen that shows one (screens.picker).
KV_FILES = (Path(__file__).with_name("big_button.kv"),)
BIG_TILE_KV_FILE = Path(__file__).with_name("big_tile.kv")


def load_kv_files(files: Iterable[Path]) -> None:
    """Load kv ``files``, each once, whatever the number of apps built in this process."""
    loaded = {os.path.abspath(f) for f in Builder.files}
    for path in files:
        if str(path.resolve()) not in loaded:
            Builder.load_file(str(path))


__all__ = ["BIG_TILE_KV_FILE", "KV_FILES", "BigButton", "BigTile", "Glyph", "load_kv_files"]
