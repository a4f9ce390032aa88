"""Photo files on disk, content-addressed: ``{photos_dir}/{sha[:2]}/{sha}.jpg`` and its
thumbnail ``{sha}.thumb.jpg`` (``sha`` is the SHA-256 of the tablet-sized JPEG).

Every file is written to ``{photos_dir}/tmp`` first, flushed to disk, then renamed into place
(``os.replace`` is atomic on one file system): a reader never sees half a photo, and a crash
leaves at most a temporary file, removed by :meth:`PhotoStore.sweep`.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from backend.photos.processing import ProcessedPhoto


class PhotoStore:
    """The folder of photo files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def path(self, sha256: str, *, thumb: bool = False) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256")
        return self.root / sha256[:2] / f"{sha256}{'.thumb' if thumb else ''}.jpg"

    def temp_path(self, suffix: str = ".upload") -> Path:
        """A new empty file in the temporary folder (for an upload being received)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp, suffix=suffix)
        os.close(fd)
        return Path(name)

    def has(self, sha256: str) -> bool:
        return self.path(sha256).exists() and self.path(sha256, thumb=True).exists()

    def put(self, photo: ProcessedPhoto) -> bool:
        """Both files in place; True when this call created them (False: already there)."""
        sha = photo.display.sha256
        if self.has(sha):
            return False
        self._write(self.path(sha, thumb=True), photo.thumb.data)
        self._write(self.path(sha), photo.display.data)
        return True

    def remove(self, sha256: str) -> None:
        for thumb in (True, False):
            self.path(sha256, thumb=thumb).unlink(missing_ok=True)

    def sweep(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files left by a crash; returns how many."""
        if not self.tmp.exists():
            return 0
        removed = 0
        limit = time.time() - older_than_s
        for leftover in self.tmp.iterdir():
            if leftover.stat().st_mtime < limit:
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    def _write(self, final: Path, data: bytes) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = self.temp_path(suffix=".part")
        try:
            with temp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
