"""Measuring a screen as a resident meets it: touch targets in mm, text in sp, contrast ratios.

Used by the accessibility test (``tests/ui/test_accessibility.py``) and ``make screenshots``.
Sizes are measured on the *real* screen: pixels are turned into millimetres and into
"physical" sp with the screen's dpi (``dpi / 160`` pixels per sp, as Android defines it), so a
window that Kivy believes to be 96 dpi cannot make small text pass.

The colour behind a label is found as a painter would: the last opaque shape drawn under the
label's centre by the label itself (``canvas.before``) or, failing that, by its nearest
ancestor that draws one; the window's clear colour last.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from kivy.graphics import Canvas, Color, InstructionGroup
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.label import Label
from kivy.uix.relativelayout import RelativeLayout
from kivy.uix.textinput import TextInput

from screens.components.palette import Rgba, contrast_ratio

TARGET_MIN_MM = 18.0
BODY_MIN_SP = 24.0
NAME_MIN_SP = 32.0
CONTRAST_MIN = 7.0
# Shapes that paint a solid area (lines and images do not count as a background).
SOLID_SHAPES = {
    "Rectangle",
    "RoundedRectangle",
    "Ellipse",
    "SmoothRectangle",
    "SmoothRoundedRectangle",
    "SmoothEllipse",
}


@dataclass
class Measures:
    """What one screen measured, and what failed."""

    screen: str
    targets: list[dict[str, Any]] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def smallest_target_mm(self) -> float | None:
        return min((t["min_mm"] for t in self.targets), default=None)

    def lowest_contrast(self) -> float | None:
        return min((t["contrast"] for t in self.texts if t["contrast"] is not None), default=None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["smallest_target_mm"] = self.smallest_target_mm()
        data["lowest_contrast"] = self.lowest_contrast()
        return data


def px_to_mm(px: float, dpi: float) -> float:
    return px * 25.4 / dpi


def px_to_sp(px: float, dpi: float) -> float:
    """Physical sp: 1 sp is 1/160 inch on the real screen."""
    return px * 160.0 / dpi


def widget_path(widget: Any) -> str:
    """``Screen>Box>BigButton#key_1``: enough to find a widget in a failure message."""
    parts = []
    node = widget
    while node is not None and node is not node.parent and len(parts) < 8:
        name = type(node).__name__
        ident = _id_of(node)
        parts.append(f"{name}#{ident}" if ident else name)
        if type(node).__name__.endswith("Screen"):
            break
        node = node.parent
    return ">".join(reversed(parts))


def _id_of(widget: Any) -> str:
    parent = widget.parent
    for _ in range(12):  # the window is its own parent: never walk for ever
        if parent is None:
            break
        ids = getattr(parent, "ids", {}) or {}
        for key, value in ids.items():
            if value is widget:
                return str(key)
        if type(parent).__name__.endswith("Screen") or parent.parent is parent:
            break
        parent = parent.parent
    return ""


def window_rect(widget: Any) -> tuple[float, float, float, float]:
    x0, y0 = widget.to_window(widget.x, widget.y)
    x1, y1 = widget.to_window(widget.right, widget.top)
    return x0, y0, x1, y1


def visible_widgets(root: Any, window_size: tuple[float, float]) -> Iterator[Any]:
    """Every widget under ``root`` a person can see: opaque enough, not empty, on screen."""
    for widget, _opacity in _visible(root, window_size):
        yield widget


def _visible(root: Any, window_size: tuple[float, float]) -> Iterator[tuple[Any, float]]:
    """``visible_widgets`` with each widget's opacity times its ancestors' (what is drawn)."""
    width, height = window_size

    def walk(widget: Any, opacity: float) -> Iterator[tuple[Any, float]]:
        opacity *= float(getattr(widget, "opacity", 1.0))
        if opacity < 0.05:
            return
        x0, y0, x1, y1 = window_rect(widget)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        on_screen = 0 <= cx <= width and 0 <= cy <= height
        if on_screen and widget.width >= 1 and widget.height >= 1:
            yield widget, opacity
        for child in list(widget.children):
            yield from walk(child, opacity)

    yield from walk(root, 1.0)


def is_touch_target(widget: Any) -> bool:
    if isinstance(widget, ButtonBehavior):
        return True
    is_event = getattr(widget, "is_event_type", None)
    return bool(is_event and (is_event("on_release") or is_event("on_press")))


def _to_window_from_canvas(owner: Any, x: float, y: float) -> tuple[float, float]:
    # A RelativeLayout (a Screen too) draws its own canvas in its local coordinates.
    if isinstance(owner, RelativeLayout):
        x, y = owner.to_parent(x, y)
    return owner.to_window(x, y)


def _flatten(groups: list[Any]) -> Iterator[Any]:
    """The instructions of ``groups`` in drawing order, without the child widgets' canvases."""
    for group in groups:
        for instruction in group.children:
            if isinstance(instruction, Canvas):
                continue  # a child widget's canvas: not drawn by the owner itself
            if isinstance(instruction, InstructionGroup):
                yield from _flatten([instruction])
            else:
                yield instruction


def _solid_under(owner: Any, point: tuple[float, float], *, own_canvas: bool) -> Rgba | None:
    """The last opaque shape ``owner`` paints under ``point`` (window coordinates)."""
    found: Rgba | None = None
    groups = [owner.canvas.before]
    if own_canvas:
        groups.append(owner.canvas)
    color: Rgba | None = None
    for instruction in _flatten(groups):
        if isinstance(instruction, Color):
            color = tuple(instruction.rgba)  # type: ignore[assignment]
            continue
        kind = type(instruction).__name__
        if kind not in SOLID_SHAPES or color is None or color[3] < 0.99:
            continue
        texture = getattr(instruction, "texture", None)
        # A picture (a photo) is not a solid colour; KivyMD's smoothing textures are.
        if kind == "Rectangle" and texture is not None and max(texture.size) > 2:
            continue
        x, y = instruction.pos
        w, h = instruction.size
        if w <= 0 or h <= 0:
            continue
        x0, y0 = _to_window_from_canvas(owner, x, y)
        x1, y1 = _to_window_from_canvas(owner, x + w, y + h)
        if min(x0, x1) <= point[0] <= max(x0, x1) and min(y0, y1) <= point[1] <= max(y0, y1):
            found = color
    return found


def background_behind(widget: Any, clear_color: Rgba) -> Rgba:
    """The opaque colour a person sees behind ``widget``'s centre."""
    x0, y0, x1, y1 = window_rect(widget)
    point = ((x0 + x1) / 2, (y0 + y1) / 2)
    node = widget
    first = True
    while node is not None:
        # A label's own canvas is its text: only its canvas.before can be a background.
        colour = _solid_under(node, point, own_canvas=not first)
        if colour is not None:
            return colour
        first = False
        parent = node.parent
        if parent is node or parent is None or not hasattr(parent, "canvas"):
            break
        node = parent
    return clear_color


def blend(foreground: Rgba, background: Rgba) -> Rgba:
    a = foreground[3]
    r, g, b = (foreground[i] * a + background[i] * (1 - a) for i in range(3))
    return (r, g, b, 1.0)


def measure_screen(
    screen: Any,
    *,
    name: str,
    dpi: float,
    window_size: tuple[float, float],
    clear_color: Rgba,
    names: set[str],
    shade: Rgba | None = None,
) -> Measures:
    """Walk ``screen`` and measure every touch target and every text on it.

    A text drawn at a partial opacity (its own or an ancestor's) is blended into its background
    as it is drawn; ``shade`` is a translucent colour laid over the whole screen (the home's
    night shade), blended over both the text and its background.
    """
    result = Measures(screen=name)
    for widget, opacity in _visible(screen, window_size):
        if is_touch_target(widget) and widget is not screen:
            x0, y0, x1, y1 = window_rect(widget)
            w_mm, h_mm = px_to_mm(abs(x1 - x0), dpi), px_to_mm(abs(y1 - y0), dpi)
            entry = {
                "widget": widget_path(widget),
                "text": str(getattr(widget, "text", "") or getattr(widget, "name", "")),
                "width_mm": round(w_mm, 2),
                "height_mm": round(h_mm, 2),
                "min_mm": round(min(w_mm, h_mm), 2),
            }
            result.targets.append(entry)
            if entry["min_mm"] < TARGET_MIN_MM:
                result.failures.append(
                    f"{name}: touch target {entry['widget']} {entry['text']!r} is "
                    f"{w_mm:.1f} x {h_mm:.1f} mm (< {TARGET_MIN_MM} mm)"
                )
        if isinstance(widget, Label | TextInput):
            text = str(widget.text or "").strip()
            if not text:
                continue
            size_sp = px_to_sp(float(widget.font_size), dpi)
            is_name = text in names
            minimum = NAME_MIN_SP if is_name else BODY_MIN_SP
            if isinstance(widget, TextInput):
                colour = tuple(widget.foreground_color)
                background: Rgba = tuple(widget.background_color)  # type: ignore[assignment]
            else:
                colour = tuple(widget.color)
                background = background_behind(widget, clear_color)
            drawn = (*colour[:3], colour[3] * opacity)
            seen_text, seen_background = blend(drawn, background), background  # type: ignore[arg-type]
            if shade is not None:
                seen_text, seen_background = blend(shade, seen_text), blend(shade, background)
            ratio = None
            if not widget.disabled:  # WCAG exempts disabled controls
                ratio = round(contrast_ratio(seen_text, seen_background), 2)
            entry = {
                "widget": widget_path(widget),
                "text": text[:60],
                "sp": round(size_sp, 1),
                "name": is_name,
                "colour": [round(c, 3) for c in colour],
                "background": [round(c, 3) for c in background],
                "contrast": ratio,
            }
            result.texts.append(entry)
            if size_sp < minimum - 0.05:
                kind = "name" if is_name else "text"
                result.failures.append(
                    f"{name}: {kind} {entry['widget']} {text[:40]!r} is {size_sp:.1f} sp "
                    f"(< {minimum} sp)"
                )
            if ratio is not None and ratio < CONTRAST_MIN:
                result.failures.append(
                    f"{name}: contrast of {entry['widget']} {text[:40]!r} is {ratio}:1 "
                    f"(< {CONTRAST_MIN}:1; text {entry['colour']} on {entry['background']})"
                )
    return result
