"""Screenshots of the web pages: always into the test's folder, into ``docs/screens/`` on request.

The same rule as the UI tests: every run writes its screenshots under the test's ``tmp_path``
(open them there to look at what the test saw), and only ``LIENS_UPDATE_DOCS_SCREENS=1`` copies
them to ``docs/screens/``, so a test run never dirties the working tree (nor CI's clone).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

DOCS_SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def update_docs_screens() -> bool:
    return os.environ.get("LIENS_UPDATE_DOCS_SCREENS") == "1"


class Screenshots:
    """``shots(page, "family-en", full_page=True)`` writes ``{out_dir}/family-en.png``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.taken: list[Path] = []

    def __call__(self, page: Any, name: str, *, full_page: bool = False) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        # A real picture, not an empty file: the page was drawn.
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
        assert path.stat().st_size > 2000, f"{path} is suspiciously small"
        self.taken.append(path)
        if update_docs_screens():
            DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_SCREENS / path.name)
        return path
