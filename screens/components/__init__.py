"""The few widgets the whole app is built from, so its look changes in one place.

``BigTile`` is a contact's photo (or initials) with the name under it; ``BigButton`` is a
large, high-contrast button. Both are KivyMD cards underneath: KivyMD API changes touch only
``screens/components/``.
"""

from __future__ import annotations

from pathlib import Path

from screens.components.big_button import BigButton
from screens.components.big_tile import BigTile

KV_FILES = (
    Path(__file__).with_name("big_button.kv"),
    Path(__file__).with_name("big_tile.kv"),
)

__all__ = ["KV_FILES", "BigButton", "BigTile"]
