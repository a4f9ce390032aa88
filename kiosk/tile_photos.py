"""Contact portraits at the size a home tile shows them, cached on disk beside the photos.

A portrait comes as a 640 px JPEG; a home tile shows it at about 200 px. Decoding the full file
and uploading its texture for each of six tiles took ~15 ms a tile on the main thread before
the first frame (Mesa's llvmpipe, these machines). The home therefore draws a copy at the tile's
size when one is on disk (:func:`cached`), and makes the missing ones in the background
(:func:`make`) for the next start; until then it draws the original.

A copy lives in a ``tiles`` folder beside its source (the photo cache's folder: its pruning
ignores that folder) and is named after the source's name, the side and the source's size and
modification time, so a replaced file never shows a stale copy. Sides are rounded up to
``SIDE_STEP`` pixels: a copy is never smaller than the tile. A copy also serves smaller tiles,
down to half its side (:data:`MAX_DOWNSCALE`): the home's first render sizes its tiles for a
default space, often bigger than the laid-out one, and a later render (a new configuration)
sizes them for the real space; with exact sizes only, each re-render made a copy at the other
size and removed the one the next start would look for. Making a copy removes the other copies
of the same source and the copies whose source is gone. Only JPEG sources get a copy (the photo
cache's files). No Kivy here: Pillow decodes the JPEG in draft mode (at 1/2, 1/4 or 1/8 of its
size, cheaply), then resizes.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

FOLDER = "tiles"
SIDE_STEP = 64  # pixels: a copy's side is the tile's rounded up to this
MAX_DOWNSCALE = 2.0  # a copy serves a tile down to 1/2 of its side (GPU minification stays sharp)
QUALITY = 90


def side_for(picture: float) -> int:
    """The side of the copy for a tile picture of ``picture`` pixels (rounded up)."""
    return max(SIDE_STEP, -(-int(picture) // SIDE_STEP) * SIDE_STEP)


def path_for(source: str | Path, picture: float) -> Path | None:
    """Where the copy of ``source`` for a ``picture``-pixel tile is (or would be); None when
    ``source`` is not a file."""
    source = Path(source)
    try:
        stat = source.stat()
    except OSError:
        return None
    side = side_for(picture)
    name = f"{source.name}.{side}.{stat.st_size:x}-{stat.st_mtime_ns:x}.jpg"
    return source.parent / FOLDER / name


def cached(source: str, picture: float) -> str:
    """A copy of ``source`` on disk that serves a ``picture``-pixel tile, else "": the one at
    the tile's side, or the smallest bigger one up to ``MAX_DOWNSCALE`` times the side."""
    if not source:
        return ""
    path = path_for(source, picture)
    if path is None:
        return ""
    if path.is_file():
        return str(path)
    side = side_for(picture)
    # A copy's name: "<source name>.<side>.<source size>-<source mtime>.jpg" (path_for).
    name, _, stamp, _ = path.name.rsplit(".", 3)
    usable: list[tuple[int, Path]] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return ""
    for entry in entries:
        parts = entry.name.rsplit(".", 3)
        if len(parts) != 4 or parts[0] != name or parts[2] != stamp or parts[3] != "jpg":
            continue
        try:
            copy_side = int(parts[1])
        except ValueError:
            continue
        if side <= copy_side <= side * MAX_DOWNSCALE:
            usable.append((copy_side, entry))
    return str(min(usable)[1]) if usable else ""


def make(source: str, picture: float) -> str:
    """Write the copy of ``source`` for a ``picture``-pixel tile (blocking; a background
    thread's work). Returns its path, or "" when the source cannot be read."""
    from PIL import Image  # only when a copy is missing: not on the start's path

    path = path_for(source, picture)
    if path is None:
        return ""
    existing = cached(source, picture)
    if existing:
        return existing
    side = side_for(picture)
    try:
        with Image.open(source) as image:
            if image.format != "JPEG":
                return ""  # the photo cache holds JPEGs; anything else is drawn as it is
            # Decode at the smallest 1/2^n scale still at least the side (JPEG only).
            image.draft("RGB", (side, side))
            picture_image = image.convert("RGB")
            # As the tile fits it ("contain"): the longer edge becomes the side, never larger.
            picture_image.thumbnail((side, side), Image.Resampling.LANCZOS)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + f".{os.getpid()}-{threading.get_ident()}.part")
        picture_image.save(part, "JPEG", quality=QUALITY)
        os.replace(part, path)
    except OSError as exc:  # an unreadable or truncated source, a full disk
        log.warning("no tile copy of %s: %s", source, exc)
        return ""
    _prune(path.parent, keep=path.name)
    return str(path)


def drop_orphans(photos_folder: str | Path) -> None:
    """Delete the copies whose source is gone (the photo cache calls this when it prunes: a
    revoked contact's portrait leaves the tablet with its copies)."""
    folder = Path(photos_folder) / FOLDER
    if folder.is_dir():
        _prune(folder, keep="")


def _prune(folder: Path, *, keep: str) -> None:
    """Delete the other copies of ``keep``'s source, and copies whose source is gone."""
    source_name = keep.rsplit(".", 3)[0] if keep else None
    for entry in folder.iterdir():
        name = entry.name
        if name == keep or name.endswith(".part"):
            continue
        parts = name.rsplit(".", 3)
        if len(parts) != 4:
            continue  # not ours
        if parts[0] == source_name or not (folder.parent / parts[0]).exists():
            entry.unlink(missing_ok=True)
