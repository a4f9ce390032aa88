"""Draws the tablet's built-in pictures and chime: ``python -m kiosk.assets.make_assets``.

The memory game needs pictures when a resident has too few family photos. These are simple,
friendly shapes on bright plain backgrounds, each with its own colour *and* outline so that
two cards can be told apart without good colour vision. Drawn here with Pillow at 4x and
scaled down (smooth edges); the chime is a soft two-note bell written with ``wave``. The
output is committed; see ``LICENSES.md`` (CC0).
"""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
PICTURES = HERE / "pictures"
SIZE = 256
S = 4  # supersampling
Draw = ImageDraw.ImageDraw


def _xy(*values: float) -> list[float]:
    return [v * S for v in values]


def flower(d: Draw) -> None:
    for k in range(6):
        a = k * math.pi / 3
        cx, cy = 128 + 55 * math.cos(a), 128 + 55 * math.sin(a)
        d.ellipse(
            _xy(cx - 42, cy - 42, cx + 42, cy + 42), fill="#E8457A", outline="#5C0F2B", width=4 * S
        )
    d.ellipse(_xy(93, 93, 163, 163), fill="#FFD23F", outline="#6B4E00", width=4 * S)


def apple(d: Draw) -> None:
    d.rectangle(_xy(122, 40, 134, 80), fill="#5B3A1E")
    d.ellipse(_xy(134, 38, 190, 70), fill="#3FA34D", outline="#1B4D22", width=3 * S)
    d.ellipse(_xy(48, 70, 140, 210), fill="#D62828", outline="#5A0B0B", width=4 * S)
    d.ellipse(_xy(116, 70, 208, 210), fill="#D62828", outline="#5A0B0B", width=4 * S)
    d.ellipse(_xy(80, 90, 176, 214), fill="#D62828")


def sun(d: Draw) -> None:
    for k in range(12):
        a = k * math.pi / 6
        x1, y1 = 128 + 70 * math.cos(a), 128 + 70 * math.sin(a)
        x2, y2 = 128 + 112 * math.cos(a), 128 + 112 * math.sin(a)
        d.line(_xy(x1, y1, x2, y2), fill="#C25E00", width=14 * S)
    d.ellipse(_xy(58, 58, 198, 198), fill="#FFC300", outline="#8A5A00", width=4 * S)


def fish(d: Draw) -> None:
    d.polygon(_xy(170, 128, 226, 78, 226, 178), fill="#1F7A8C", outline="#06303A", width=4 * S)
    d.ellipse(_xy(30, 70, 190, 186), fill="#2EC4B6", outline="#06303A", width=4 * S)
    d.ellipse(_xy(62, 104, 86, 128), fill="#FFFFFF", outline="#06303A", width=3 * S)
    d.ellipse(_xy(70, 111, 80, 121), fill="#06303A")


def cat(d: Draw) -> None:
    d.polygon(_xy(60, 110, 70, 30, 120, 80), fill="#F4A259", outline="#5A3210", width=4 * S)
    d.polygon(_xy(196, 110, 186, 30, 136, 80), fill="#F4A259", outline="#5A3210", width=4 * S)
    d.ellipse(_xy(44, 60, 212, 220), fill="#F4A259", outline="#5A3210", width=4 * S)
    d.ellipse(_xy(84, 110, 108, 140), fill="#1B1B1B")
    d.ellipse(_xy(148, 110, 172, 140), fill="#1B1B1B")
    d.polygon(_xy(116, 160, 140, 160, 128, 174), fill="#C0392B")


def tree(d: Draw) -> None:
    d.rectangle(_xy(110, 150, 146, 230), fill="#7A4A21", outline="#3A2208", width=4 * S)
    d.ellipse(_xy(40, 30, 216, 180), fill="#2D9A3E", outline="#0F3D17", width=4 * S)


def house(d: Draw) -> None:
    d.rectangle(_xy(56, 120, 200, 222), fill="#F2E8CF", outline="#3B2F1E", width=4 * S)
    d.polygon(_xy(36, 124, 128, 38, 220, 124), fill="#BC4749", outline="#4A1011", width=4 * S)
    d.rectangle(_xy(112, 160, 146, 222), fill="#386FA4", outline="#0E2A47", width=3 * S)
    d.rectangle(_xy(70, 140, 100, 170), fill="#9AD1F5", outline="#0E2A47", width=3 * S)


def boat(d: Draw) -> None:
    d.polygon(_xy(130, 40, 130, 160, 210, 160), fill="#FFFFFF", outline="#1D3557", width=4 * S)
    d.polygon(_xy(122, 60, 122, 160, 60, 160), fill="#F1FAEE", outline="#1D3557", width=4 * S)
    d.polygon(
        _xy(30, 170, 226, 170, 196, 216, 60, 216), fill="#E63946", outline="#4A0B10", width=4 * S
    )


def heart(d: Draw) -> None:
    d.ellipse(_xy(40, 50, 136, 146), fill="#C9184A")
    d.ellipse(_xy(120, 50, 216, 146), fill="#C9184A")
    d.polygon(_xy(46, 118, 210, 118, 128, 220), fill="#C9184A")


def star(d: Draw) -> None:
    points = []
    for k in range(10):
        a = -math.pi / 2 + k * math.pi / 5
        r = 104 if k % 2 == 0 else 44
        points += [128 + r * math.cos(a), 136 + r * math.sin(a)]
    d.polygon(_xy(*points), fill="#FFB703", outline="#7A4A00", width=4 * S)


def pear(d: Draw) -> None:
    d.rectangle(_xy(122, 30, 134, 62), fill="#5B3A1E")
    d.ellipse(_xy(88, 50, 168, 140), fill="#B5C938", outline="#3E4A0A", width=4 * S)
    d.ellipse(_xy(58, 100, 198, 226), fill="#B5C938", outline="#3E4A0A", width=4 * S)
    d.ellipse(_xy(94, 90, 162, 150), fill="#B5C938")


def bird(d: Draw) -> None:
    d.polygon(_xy(190, 110, 236, 96, 196, 134), fill="#F77F00", outline="#5A2D00", width=3 * S)
    d.ellipse(_xy(40, 80, 200, 200), fill="#4361EE", outline="#10196B", width=4 * S)
    d.ellipse(_xy(120, 60, 210, 150), fill="#4361EE", outline="#10196B", width=4 * S)
    d.ellipse(_xy(160, 88, 180, 108), fill="#FFFFFF")
    d.ellipse(_xy(166, 94, 176, 104), fill="#111111")
    d.pieslice(_xy(60, 110, 150, 190), 0, 180, fill="#7B8CFF", outline="#10196B", width=3 * S)


# name -> (background, drawing)
DRAWINGS: dict[str, tuple[str, Callable[[Draw], None]]] = {
    "flower": ("#E6F4EA", flower),
    "apple": ("#FFF3D6", apple),
    "sun": ("#D8ECFF", sun),
    "fish": ("#FFE8D6", fish),
    "cat": ("#E3F2FD", cat),
    "tree": ("#FDF0D5", tree),
    "house": ("#DDEFE3", house),
    "boat": ("#CFE8FF", boat),
    "heart": ("#FDE2E4", heart),
    "star": ("#E0DEFF", star),
    "pear": ("#F6E7F7", pear),
    "bird": ("#FFF6CC", bird),
}


def make_pictures() -> list[Path]:
    PICTURES.mkdir(exist_ok=True)
    written = []
    for name, (background, draw) in DRAWINGS.items():
        image = Image.new("RGB", (SIZE * S, SIZE * S), background)
        draw(ImageDraw.Draw(image))
        path = PICTURES / f"{name}.png"
        image.resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(path, optimize=True)
        written.append(path)
    return written


def make_chime(path: Path = HERE / "chime.wav", rate: int = 22050) -> Path:
    """A soft two-note bell (E5 then A5), 1.2 s, quiet, with a gentle attack (no click)."""
    notes = ((659.25, 0.0), (880.0, 0.18))
    length = int(rate * 1.2)
    frames = bytearray()
    for n in range(length):
        t = n / rate
        value = 0.0
        for freq, start in notes:
            if t < start:
                continue
            u = t - start
            envelope = min(1.0, u / 0.015) * math.exp(-u * 3.2)
            value += envelope * (
                math.sin(2 * math.pi * freq * u) + 0.3 * math.sin(4 * math.pi * freq * u)
            )
        frames += struct.pack("<h", int(max(-1.0, min(1.0, value * 0.22)) * 32767))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return path


if __name__ == "__main__":
    for written in [*make_pictures(), make_chime()]:
        print(written.relative_to(HERE.parents[1]))
