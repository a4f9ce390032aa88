"""The checks a photo must pass, and its re-encoding, with Pillow.

Whatever the file's name says, its first bytes decide what it is: JPEG, PNG or WebP are accepted
(HEIC is not: Pillow cannot read it without a plug-in, and the relative is told how to send a
JPEG). The pixel count is checked from the header, before anything is decoded, against
``photo_max_pixels`` (and ``Image.MAX_IMAGE_PIXELS``, Pillow's own guard, is set to the same
value), so a small file claiming 30000 × 30000 pixels never reaches the decoder.

What is kept is a new image: the EXIF orientation is applied, the colours are converted to sRGB,
then the pixels alone are copied into a fresh JPEG (quality 85). EXIF (GPS, camera, date), XMP,
ICC profiles and comments are all left behind: no location leaves the family's phone.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

DISPLAY_PX = 1920  # the tablet-sized version: its longest side at most
THUMB_PX = 320  # the thumbnail (the relative's page, the memory game's cards)
JPEG_QUALITY = 85
ACCEPTED = ("JPEG", "PNG", "WEBP")
MB = 1024 * 1024
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"mif1", b"msf1")

# Sentences for the relative (msgids of the web catalogue, translated by the route).
NOT_A_PHOTO = "This file is not a photo."
HEIC = (
    "Photos in HEIC format are not accepted yet. On an iPhone, choose Settings › Camera › "
    "Formats › Most Compatible, or send the photo as a JPEG."
)
TOO_BIG = "This photo is too big (%(size)s MB); the limit is %(limit)s MB."
TOO_MANY_PIXELS = (
    "This photo is too large (%(pixels)s megapixels); the limit is %(limit)s megapixels."
)
DAMAGED = "This photo could not be read; the file may be damaged."


@dataclass(eq=False)
class PhotoRejected(Exception):
    """A file or an upload that is refused, with a sentence for the person who sent it.

    ``message`` is an English msgid of the web catalogue; ``params`` fill it once translated.
    """

    message: str
    status_code: int = 400
    params: dict[str, object] = field(default_factory=dict)
    filename: str = ""

    def __str__(self) -> str:
        return self.message % self.params if self.params else self.message


def megabytes(size: int) -> int:
    """Sizes as a phone shows them: whole MB (of 1024 × 1024 bytes), at least 1."""
    return max(1, round(size / MB))


def too_big(size: int, limit: int, filename: str = "") -> PhotoRejected:
    return PhotoRejected(
        TOO_BIG, 413, {"size": megabytes(size), "limit": megabytes(limit)}, filename
    )


def sniff(head: bytes) -> str:
    """The format the first bytes announce: 'JPEG', 'PNG', 'WEBP', 'HEIC' or ''."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in (
        b"heic",
        b"heix",
        b"hevc",
        b"heim",
        b"mif1",
        b"msf1",
    ):
        return "HEIC"
    return ""


@dataclass(frozen=True)
class Rendition:
    """One JPEG ready to store: its bytes, content hash and size in pixels."""

    data: bytes
    sha256: str
    width: int
    height: int

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class ProcessedPhoto:
    display: Rendition  # at most DISPLAY_PX on its longest side
    thumb: Rendition  # at most THUMB_PX


def process(path: Path, *, max_pixels: int, filename: str = "") -> ProcessedPhoto:
    """Check the file at ``path`` and re-encode it; :class:`PhotoRejected` when it is refused."""
    with path.open("rb") as f:
        head = f.read(32)
    kind = sniff(head)
    if kind == "HEIC":
        raise PhotoRejected(HEIC, 415, filename=filename)
    if kind not in ACCEPTED:
        raise PhotoRejected(NOT_A_PHOTO, 415, filename=filename)
    # Pillow's own guard: it refuses (DecompressionBombError) at twice this many pixels while
    # opening, before decoding; our check below refuses anything above it.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(path, formats=[kind]) as opened:
            pixels = opened.width * opened.height
            if pixels > max_pixels:
                raise _too_many_pixels(pixels, max_pixels, filename)
            if kind == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the photo is much larger
                # than the tablet's screen: less memory and time, same result.
                opened.draft("RGB", (DISPLAY_PX, DISPLAY_PX))
            opened.load()
            image = _upright_srgb(opened)
    except Image.DecompressionBombError as exc:
        log.info("decompression bomb refused: %s", exc)
        raise _too_many_pixels(_claimed_pixels(path, kind), max_pixels, filename) from exc
    except UnidentifiedImageError as exc:
        raise PhotoRejected(NOT_A_PHOTO, 415, filename=filename) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt data: Pillow says so with one of these.
        log.info("unreadable photo: %s", exc)
        raise PhotoRejected(DAMAGED, 422, filename=filename) from exc
    display = image.copy()
    display.thumbnail((DISPLAY_PX, DISPLAY_PX), Image.Resampling.LANCZOS)
    thumb = display.copy()
    thumb.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    return ProcessedPhoto(display=_encode(display), thumb=_encode(thumb))


def _too_many_pixels(pixels: int, limit: int, filename: str) -> PhotoRejected:
    return PhotoRejected(
        TOO_MANY_PIXELS,
        422,
        {"pixels": max(1, round(pixels / 1_000_000)), "limit": round(limit / 1_000_000)},
        filename,
    )


def _claimed_pixels(path: Path, kind: str) -> int:
    """What the header claims, read with Pillow's guard off but nothing decoded."""
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path, formats=[kind]) as claimed:
            return int(claimed.width * claimed.height)
    except Exception:  # noqa: BLE001 - only for the sentence; the file is refused anyway
        return 0
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _upright_srgb(image: Image.Image) -> Image.Image:
    """An RGB image, turned as the camera meant (EXIF orientation), in sRGB colours."""
    upright = ImageOps.exif_transpose(image)
    if upright.mode in ("RGBA", "LA", "PA") or (
        upright.mode == "P" and "transparency" in upright.info
    ):
        # Transparent areas of a PNG become white, not black, on the tablet.
        rgba = upright.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        upright = Image.alpha_composite(background, rgba)
    icc = upright.info.get("icc_profile")
    if icc and upright.mode in ("RGB", "CMYK"):
        try:
            from PIL import ImageCms

            converted = ImageCms.profileToProfile(
                upright,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
            if converted is not None:
                upright = converted
        except (ImportError, OSError, ValueError, ImageCms.PyCMSError) as exc:
            log.info("colour profile ignored: %s", exc)
    return upright.convert("RGB")


def _encode(image: Image.Image) -> Rendition:
    # A brand-new image holding only the pixels: no info dictionary, so no EXIF, XMP, ICC
    # profile or comment can be carried over by the encoder.
    clean = Image.new("RGB", image.size)
    clean.paste(image)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    data = out.getvalue()
    return Rendition(data, hashlib.sha256(data).hexdigest(), clean.width, clean.height)
