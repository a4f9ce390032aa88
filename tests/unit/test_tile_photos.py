"""Portraits at the home tile's size, cached beside the photos (kiosk.tile_photos)."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from kiosk import tile_photos
from kiosk.photos import PhotoCache


def portrait(path: Path, colour: str = "tan", size: tuple[int, int] = (640, 640)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=85)
    return str(path)


def test_no_copy_until_made_then_a_copy_at_least_the_tile_size(tmp_path: Path) -> None:
    source = portrait(tmp_path / "photos" / ("a" * 64 + ".jpg"))
    assert tile_photos.cached(source, 177.8) == ""
    made = tile_photos.make(source, 177.8)
    assert made and tile_photos.cached(source, 177.8) == made
    assert Path(made).parent == tmp_path / "photos" / tile_photos.FOLDER
    with Image.open(made) as image:
        assert image.size == (192, 192)  # rounded up: never smaller than the tile
    # Another size in the same step reuses it; a smaller tile too, down to half the copy's
    # side; a bigger tile or a much smaller one has none.
    assert tile_photos.cached(source, 130) == made
    assert tile_photos.cached(source, 120) == made
    assert tile_photos.cached(source, 96) == made
    assert tile_photos.cached(source, 60) == ""
    assert tile_photos.cached(source, 200) == ""
    # make() for a size the copy serves writes nothing new.
    assert tile_photos.make(source, 120) == made
    assert len(list(Path(made).parent.iterdir())) == 1


def test_the_first_and_later_renders_share_one_copy(tmp_path: Path) -> None:
    # The first render sizes the tiles for a default space (bigger), a later one for the real
    # space: the copy made for the first serves both, so neither removes the other's.
    source = portrait(tmp_path / "photos" / "c1.jpg")
    first = tile_photos.make(source, 240.0)
    assert tile_photos.cached(source, 170.0) == first
    assert tile_photos.cached(source, 240.0) == first


def test_a_wide_photo_keeps_its_shape(tmp_path: Path) -> None:
    source = portrait(tmp_path / "wide.jpg", size=(640, 480))
    with Image.open(tile_photos.make(source, 100)) as image:
        assert image.size == (128, 96)


def test_a_replaced_photo_never_shows_its_old_copy(tmp_path: Path) -> None:
    source = portrait(tmp_path / "p.jpg", "red")
    old = tile_photos.make(source, 200)
    portrait(tmp_path / "p.jpg", "blue", size=(600, 600))
    stat = os.stat(source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert tile_photos.cached(source, 200) == ""
    new = tile_photos.make(source, 200)
    assert new != old and not Path(old).exists()  # the stale copy is removed


def test_copies_of_deleted_photos_go_and_the_cache_prune_leaves_the_folder(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "photos"
    gone = portrait(folder / ("b" * 64 + ".jpg"))
    kept = portrait(folder / ("c" * 64 + ".jpg"))
    gone_copy = tile_photos.make(gone, 200)
    kept_copy = tile_photos.make(kept, 200)
    # A revoked contact's portrait leaves the tablet with its copies, at once.
    assert PhotoCache(folder).prune(["c" * 64]) == ["b" * 64]
    assert not Path(gone_copy).exists()
    assert Path(kept_copy).exists() and (folder / tile_photos.FOLDER).is_dir()
    # A copy made later also sweeps the copies of photos removed some other way.
    stray = tile_photos.make(portrait(folder / ("d" * 64 + ".jpg")), 200)
    (folder / ("d" * 64 + ".jpg")).unlink()
    tile_photos.make(kept, 300)
    assert not Path(stray).exists()


def test_no_copy_of_a_png_a_missing_or_a_broken_file(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    Image.new("RGBA", (300, 300), (0, 0, 0, 0)).save(png)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert tile_photos.make(str(png), 100) == ""
    assert tile_photos.make(str(tmp_path / "missing.jpg"), 100) == ""
    assert tile_photos.make(str(broken), 100) == ""
    assert tile_photos.cached("", 100) == ""
