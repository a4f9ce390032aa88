"""The home screen: the approved contacts of the tablet's resident(s) as big photo tiles.

The app sets ``sections`` (from ``kiosk.viewmodel.home_sections``: each tile carries its
``availability`` and ``when``), ``connection_state``, ``look`` ("senior" or "youth"), ``night``
and the clock texts; a tile tap dispatches ``on_call_requested(approval_id)`` up to the app. The
screen never talks to the core.

Tile states, visible without reading: available (normal), "later" (greyed, a big clock and
"Demain à 14 h"), "offline" (greyed, a big "no network" sign; the offline line says why). Every
tile stays tappable: the app answers a tap that cannot call with a calm sentence.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.metrics import dp
from kivy.properties import (
    BooleanProperty,
    ColorProperty,
    DictProperty,
    ListProperty,
    NumericProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivymd.uix.gridlayout import MDGridLayout
from kivymd.uix.label import MDLabel
from kivymd.uix.screen import MDScreen

from kiosk import tile_photos
from kiosk.i18n import _
from screens.components import BigButton, palette
from screens.home import look as looks

KV_FILE = Path(__file__).with_suffix(".kv")

# A resident with tremor often taps twice; one call request per contact in this window.
REPEAT_TAP_SECONDS = 2.0
MAX_COLUMNS = 4
MIN_TILE_WIDTH = dp(280)  # a name at NAME_SP and an initials circle still fit side by side
TILE_SPACING = dp(24)
SECTION_SPACING = dp(16)  # must match sections_box.spacing in home.kv
BOX_PADDING_Y = dp(8)  # must match sections_box.padding in home.kv
HEADING_HEIGHT = palette.HEADING_SP * 1.25
REQUEST_BUTTON_SPACE = palette.TOUCH_MIN + SECTION_SPACING  # a youth's "Ask for a contact"
# A tile's fixed part (must match HomeTile in home.kv): its padding, the name and relation
# lines and the spacing between them; the rest of the tile is the photo.
TILE_PADDING = dp(12)
TILE_TEXT_HEIGHT = palette.NAME_SP * 1.2 + palette.BODY_SP * 1.15 + 2 * dp(4) + 2 * TILE_PADDING
# The shortest row a tile may get: a real photo above its two lines, and well over a target.
MIN_ROW_HEIGHT = max(palette.TOUCH_MIN * 1.5, TILE_TEXT_HEIGHT + palette.TOUCH_MIN / 2)
# A tile is a card, not a banner: never wider than this times its height.
MAX_TILE_ASPECT = 1.4
# Seconds after a render before the missing tile-size copies of the photos are made (in a
# thread): the first frame and the deferred screens go first.
MAKE_PICTURES_DELAY = 3.0


@dataclass(frozen=True)
class TileLayout:
    """One tile size for the whole screen: every section's grid uses the same columns."""

    columns: int
    tile_width: float
    tile_height: float
    fits: bool  # False: even the smallest allowed tiles overflow and the list scrolls
    content_height: float = 0.0  # the sections' total height with these tiles

    @property
    def picture(self) -> float:
        """The side of the photo (or initials circle) inside each tile."""
        return min(self.tile_width - 2 * TILE_PADDING, self.tile_height - TILE_TEXT_HEIGHT)


def tile_layout(counts: list[int], *, width: float, height: float) -> TileLayout:
    """Columns and tile size so every resident's contacts fill ``width`` x ``height``.

    ``counts`` is the number of tiles of each section (headings are shown when there are
    several). Every column count from 1 to ``MAX_COLUMNS`` is tried; the one that gives the
    biggest photo wins (the fewest columns on a tie), so fewer contacts get bigger tiles and no
    empty middle. A row is never shorter than ``MIN_ROW_HEIGHT`` nor a tile narrower than
    ``MIN_TILE_WIDTH`` (with more than one column): when nothing fits, the list scrolls.
    """
    with_headings = len(counts) > 1
    grids = sum(1 for n in counts if n > 0)
    children = grids + (len(counts) if with_headings else 0)
    biggest = max(counts, default=0)
    fixed = 2 * BOX_PADDING_Y + SECTION_SPACING * max(0, children - 1)
    if with_headings:
        fixed += len(counts) * HEADING_HEIGHT
    best: TileLayout | None = None
    fallback: TileLayout | None = None
    for columns in range(1, max(1, min(MAX_COLUMNS, biggest)) + 1):
        column_width = (width - TILE_SPACING * (columns - 1)) / columns
        if columns > 1 and column_width < MIN_TILE_WIDTH:
            break
        rows = sum(-(-n // columns) for n in counts)
        inner = TILE_SPACING * max(0, rows - grids)  # between rows inside a grid
        row_height = (height - fixed - inner) / rows if rows else height / 2
        # No taller than a square photo over its two lines; no wider than a card.
        row_height = min(row_height, column_width - 2 * TILE_PADDING + TILE_TEXT_HEIGHT)
        tile_width = min(column_width, max(row_height, MIN_TILE_WIDTH) * MAX_TILE_ASPECT)
        fits = row_height >= MIN_ROW_HEIGHT
        row_height = max(row_height, MIN_ROW_HEIGHT)
        layout = TileLayout(
            columns,
            float(tile_width),
            float(row_height),
            fits,
            float(fixed + inner + rows * row_height),
        )
        if fits and (best is None or layout.picture > best.picture + 0.5):
            best = layout
        if fallback is None or rows * row_height + inner < fallback.content_height - fixed:
            fallback = layout
    chosen = best or fallback
    assert chosen is not None  # one column is always tried
    return chosen


def _request_cells(section: dict[str, Any]) -> int:
    """1 when the section's grid ends with a youth's "Ask for a contact" cell."""
    return 1 if section.get("kind") == "youth" and section.get("tiles") else 0


def _apply_layout(grid: MDGridLayout, layout: TileLayout) -> None:
    grid.cols = layout.columns
    grid.col_default_width = layout.tile_width
    grid.row_default_height = layout.tile_height
    grid.width = layout.columns * layout.tile_width + TILE_SPACING * (layout.columns - 1)


class HomeTile(ButtonBehavior, BoxLayout):
    """One approved contact on the home: photo or initials, name, relation, and its state.

    Fed from a ``kiosk.viewmodel.HomeTile`` dict; ``look`` is the home's ("senior"/"youth").
    Colours come from ``screens.home.look.tile_colours``; a single tap dispatches
    ``on_release``, whatever the state. The pressed colour is set in ``on_state``, in the
    same frame as the touch that caused it.
    """

    approval_id = StringProperty("")
    resident_id = StringProperty("")
    contact_id = StringProperty("")
    name = StringProperty("")
    relation = StringProperty("")
    initials = StringProperty("")
    photo = StringProperty("")
    # The file drawn: ``photo``'s copy at the tile's size when one is cached (kiosk.tile_photos).
    picture = StringProperty("")
    availability = StringProperty("available")
    when = StringProperty("")
    look = StringProperty("senior")
    # The card's colours now (kept named as KivyMD's, which the tests and a11y walker read).
    md_bg_color = ColorProperty(palette.TILE)
    line_color = ColorProperty(palette.TILE_BORDER)
    tile_colours = DictProperty(looks.tile_colours("senior", "available", False))
    corner = NumericProperty(dp(24))
    line_width = NumericProperty(dp(1.5))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._recolour()

    def on_look(self, *_args: Any) -> None:
        self._recolour()

    def on_availability(self, *_args: Any) -> None:
        self._recolour()

    def on_state(self, *_args: Any) -> None:
        self._recolour()

    def _recolour(self) -> None:
        colours = looks.tile_colours(self.look, self.availability, self.state == "down")
        self.md_bg_color = colours["background"]
        self.line_color = colours["border"]
        if colours != self.tile_colours:
            self.tile_colours = colours

    def colours(self, look: str, availability: str, pressed: bool) -> dict[str, Any]:
        return looks.tile_colours(look, availability, pressed)

    def state_icon(self, availability: str) -> str:
        return STATE_ICONS.get(availability, "")

    def badge_side(self, width: float, height: float) -> float:
        """The state badge's side for a picture area of ``width`` x ``height``."""
        side = min(width, height)
        return float(min(max(side * 0.32, palette.TOUCH_MIN * 0.45), palette.TOUCH_MIN * 0.8))

    def badge_pos(self, width: float, height: float, badge: float) -> tuple[float, float]:
        """The badge's place in the picture area (its RelativeLayout's coordinates)."""
        side = min(width, height)
        top = (height + side) / 2 - badge
        if (width - side) / 2 >= badge + dp(4):
            return (width + side) / 2 + dp(4), top
        return (width + side) / 2 - badge * 0.85, top + badge * 0.15


class DoneButton(ButtonBehavior, BoxLayout):
    """A child's "I'm done" in the home's header (its colour is set by the kv rule)."""

    md_bg_color = ColorProperty((0, 0, 0, 0))


def _make_pictures(photos: list[str], picture: float) -> None:
    for photo in photos:
        tile_photos.make(photo, picture)


# The big sign over a tile's picture for each state ("" for none).
STATE_ICONS = {"available": "", "later": "clock-outline", "offline": "wifi-off"}


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def clock_texts(now: datetime) -> tuple[str, str]:
    """The date ("Monday 23 November") and time ("14:05") shown at the top, translated."""
    weekday = _(_WEEKDAYS[now.weekday()])
    month = _(_MONTHS[now.month - 1])
    date_text = _("{weekday} {day} {month}").format(weekday=weekday, day=now.day, month=month)
    return date_text, now.strftime("%H:%M")


def _mark_clock_strings() -> None:  # pragma: no cover - only for catalogue extraction
    _("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"), _("Saturday")
    _("Sunday"), _("January"), _("February"), _("March"), _("April"), _("May"), _("June")
    _("July"), _("August"), _("September"), _("October"), _("November"), _("December")


def _without_states(sections: list[dict[str, Any]]) -> list[Any]:
    return [
        (
            {k: v for k, v in section.items() if k != "tiles"},
            [
                {k: v for k, v in tile.items() if k not in ("availability", "when")}
                for tile in section.get("tiles", [])
            ],
        )
        for section in sections
    ]


class HomeScreen(MDScreen):
    """Big tiles of the approved contacts, grouped by resident when the tablet serves several.

    ``sections`` is a list of ``{"resident_id", "name", "tiles": [ContactTile, ...]}``; the
    resident headings are shown only when there is more than one section.
    """

    __events__ = ("on_call_requested", "on_request_contact", "on_done_requested")

    sections = ListProperty()
    look = StringProperty("senior")  # "youth": the dark look a teenager does not find childish
    night = BooleanProperty(False)  # quiet time: a shade, a calm sentence, a lower brightness
    night_text = StringProperty("")
    # When the night line speaks (kiosk.viewmodel.night_part): "evening", "night", "morning"
    # or "day".
    night_part = StringProperty("evening")
    brightness = NumericProperty(1.0)  # what the screen's backlight should be (0-1)
    done_text = StringProperty("")
    connection_state = StringProperty("connecting")
    connection_text = StringProperty("")
    date_text = StringProperty("")
    time_text = StringProperty("")
    empty_text = StringProperty("")
    has_config = BooleanProperty(False)

    def __init__(self, **kwargs: Any) -> None:
        # Set before super().__init__: Kivy may call on_size while applying the kv rules.
        self._last_request: dict[str, float] = {}
        self._rendered: list[dict[str, Any]] | None = None
        self._picture_side = 0
        self._render_trigger = Clock.create_trigger(self._render, 0)
        super().__init__(**kwargs)
        self.bind(sections=self._render_trigger)
        self.bind(connection_state=self._update_texts, has_config=self._update_texts)
        self.bind(night=self._update_texts, night_part=self._update_texts, look=self._on_look)

    def on_kv_post(self, base_widget: Any) -> None:
        self.ids.scroll.bind(size=self._on_space_changed)
        self._update_texts()
        self._render()

    # --- texts -------------------------------------------------------------------------------

    def refresh_texts(self) -> None:
        """Re-translate the texts set from Python (after a language change)."""
        self._update_texts()
        self._rendered = None
        self._render()

    def _update_texts(self, *_args: Any) -> None:
        self.connection_text = (
            _("The tablet is looking for the network…")
            if self.connection_state == "offline"
            else ""
        )
        self.empty_text = (
            _("No contact has been approved yet. The staff will add them soon.")
            if self.has_config
            else _("Your contacts will appear here soon.")
        )
        night_texts = {
            "evening": _("It is late, we will call tomorrow."),
            "night": _("It is night, we will call this morning."),
            "morning": _("It is still early, we will call a little later."),
            "day": _("It is quiet time, we will call a little later."),
        }
        night_text = night_texts.get(self.night_part, night_texts["evening"])
        self.night_text = night_text if self.night else ""
        self.brightness = looks.NIGHT_BRIGHTNESS if self.night else 1.0
        self.done_text = _("I'm done")

    def _on_look(self, *_args: Any) -> None:
        self._rendered = None
        self._render()

    def tick(self, now: datetime) -> None:
        """Show ``now`` in the header."""
        self.date_text, self.time_text = clock_texts(now)

    # --- tiles -------------------------------------------------------------------------------

    def _render(self, *_args: Any) -> None:
        container = self.ids.get("sections_box")
        if container is None:
            return
        sections = [dict(s) for s in self.sections]
        if sections == self._rendered:
            return
        if self._rendered is not None and _without_states(sections) == _without_states(
            self._rendered
        ):
            # Only the tiles' states changed (the minute refresh): no rebuild, no flicker.
            self._rendered = sections
            states = [t for s in sections for t in s.get("tiles", [])]
            for widget, tile in zip(self.tiles(), states, strict=False):
                widget.availability = str(tile.get("availability", "available"))
                widget.when = str(tile.get("when", ""))
            return
        self._rendered = sections
        youth = self.look == "youth"
        container.clear_widgets()
        with_headings = len(sections) > 1
        layout = self.tile_layout(sections)
        for section in sections:
            if with_headings:
                container.add_widget(
                    MDLabel(
                        text=str(section.get("name", "")),
                        bold=True,
                        theme_font_size="Custom",
                        font_size=palette.HEADING_SP,
                        theme_text_color="Custom",
                        text_color=looks.YOUTH_INK if youth else palette.INK,
                        size_hint_y=None,
                        height=HEADING_HEIGHT,
                    )
                )
            tiles = list(section.get("tiles", []))
            if not tiles:
                # No contact yet: the youth's "Ask for a contact" alone, under the heading.
                request = self._request_button(section)
                if request is not None:
                    request.size_hint = (None, None)
                    request.width, request.height = dp(480), palette.TOUCH_MIN
                    container.add_widget(request)
                continue
            # Every section's grid has the same columns and tile size, left-aligned, so a
            # resident's lone contact is a tile like the others, not a banner.
            grid = MDGridLayout(
                cols=layout.columns,
                spacing=TILE_SPACING,
                size_hint=(None, None),
                col_force_default=True,
                row_force_default=True,
                # One resident: the tiles in the middle of the screen; several: left-aligned.
                pos_hint={} if with_headings else {"center_x": 0.5},
            )
            _apply_layout(grid, layout)
            grid.bind(minimum_height=grid.setter("height"))
            for tile in tiles:
                widget = HomeTile(
                    approval_id=tile["approval_id"],
                    resident_id=tile["resident_id"],
                    contact_id=tile["contact_id"],
                    name=tile["name"],
                    relation=tile["relation"],
                    initials=tile["initials"],
                    photo=tile["photo"],
                    picture=self._picture(tile["photo"], layout),
                    availability=str(tile.get("availability", "available")),
                    when=str(tile.get("when", "")),
                    look=self.look,
                )
                widget.bind(on_release=self._on_tile_release)
                grid.add_widget(widget)
            # A youth's "Ask for a contact" is the grid's last cell, as big as a contact: it
            # costs no row of its own, so the photos keep the height.
            request = self._request_button(section)
            if request is not None:
                grid.add_widget(request)
            container.add_widget(grid)
        self._centre_vertically(layout)
        self._make_missing_pictures(layout)
        self.ids.empty_label.opacity = 0 if any(s.get("tiles") for s in sections) else 1

    def _centre_vertically(self, layout: TileLayout) -> None:
        # Tiles that do not need the whole height sit in its middle, not under the header.
        scroll, box = self.ids.scroll, self.ids.sections_box
        spare = scroll.height - layout.content_height if layout.fits else 0.0
        top = BOX_PADDING_Y + max(0.0, spare / 2)
        box.padding = [0, top, 0, BOX_PADDING_Y]
        # Tiles that fit need no scrolling, and a ScrollView that cannot scroll hands a touch
        # to the tile at once; one that can waits a frame to tell a tap from a drag, which
        # showed the pressed colour a frame late.
        scroll.do_scroll_y = not layout.fits
        if layout.fits:
            scroll.scroll_y = 1

    def tile_layout(self, sections: list[dict[str, Any]]) -> TileLayout:
        """The one tile size and column count of every section, for the space under the header."""
        scroll = self.ids.get("scroll")
        width = scroll.width if scroll is not None and scroll.width > 100 else dp(1216)
        height = scroll.height if scroll is not None and scroll.height > 100 else dp(620)
        requests = sum(
            REQUEST_BUTTON_SPACE
            for s in sections
            if s.get("kind") == "youth" and not s.get("tiles")
        )
        layout = tile_layout(
            [len(s.get("tiles", [])) + _request_cells(s) for s in sections],
            width=float(width),
            height=float(height - requests),
        )
        return replace(layout, content_height=layout.content_height + requests)

    def tiles(self) -> list[HomeTile]:
        """The tiles on screen, in order (for the app and the tests)."""
        container = self.ids.sections_box
        found: list[HomeTile] = []
        for child in reversed(container.children):
            if isinstance(child, MDGridLayout):
                found.extend(w for w in reversed(child.children) if isinstance(w, HomeTile))
        return found

    def _on_tile_release(self, tile: HomeTile) -> None:
        now = time.monotonic()
        last = self._last_request.get(tile.approval_id)
        if last is not None and now - last < REPEAT_TAP_SECONDS:
            return
        self._last_request[tile.approval_id] = now
        self.dispatch("on_call_requested", tile.approval_id)

    def _on_space_changed(self, *_args: Any) -> None:
        # Tile size follows the space left under the header (window size, offline line);
        # resize the grids in place: rebuilding the tiles would make them flicker.
        if self._rendered is None:
            return
        layout = self.tile_layout(self._rendered)
        for child in self.ids.sections_box.children:
            if isinstance(child, MDGridLayout):
                _apply_layout(child, layout)
        self._centre_vertically(layout)
        if tile_photos.side_for(layout.picture) > self._picture_side:
            # Bigger tiles: each draws the copy at its new size, or its photo (no blur). Smaller
            # ones keep theirs: the first render, before the layout, sizes the tiles for a
            # default space, often bigger than the real one, and loading again would cost more.
            for tile in self.tiles():
                tile.picture = self._picture(tile.photo, layout)
            self._make_missing_pictures(layout)

    # --- the photos at the tiles' size (kiosk.tile_photos) -------------------------------------

    def _picture(self, photo: str, layout: TileLayout) -> str:
        self._picture_side = tile_photos.side_for(layout.picture)
        return tile_photos.cached(photo, layout.picture) or photo

    def _make_missing_pictures(self, layout: TileLayout) -> None:
        missing = [t.photo for t in self.tiles() if t.photo and t.picture == t.photo]
        if missing:
            # Off the main thread and after the first frames: for the next start.
            Clock.schedule_once(
                lambda _dt: threading.Thread(
                    target=_make_pictures,
                    args=(missing, layout.picture),
                    name="tile-photos",
                    daemon=True,
                ).start(),
                MAKE_PICTURES_DELAY,
            )

    def on_call_requested(self, approval_id: str) -> None:
        """Default handler: the app binds to this event."""

    def done_released(self) -> None:
        """A child's "I'm done": back to the picker, so the next child sees nothing of theirs."""
        self.dispatch("on_done_requested")

    def on_done_requested(self) -> None:
        """Default handler: the picker's routing binds to this event."""

    # --- "Demander un contact" (youth only) --------------------------------------------------

    def _request_button(self, section: dict[str, Any]) -> BigButton | None:
        if section.get("kind") != "youth":
            return None
        button = BigButton(text=_("Ask for a contact"))
        button.resident_id = str(section.get("resident_id", ""))
        button.resident_name = str(section.get("name", ""))
        button.bind(on_release=self._on_request_release)
        return button

    def request_buttons(self) -> list[BigButton]:
        """The "Ask for a contact" buttons on screen (for the tests)."""
        found: list[BigButton] = []
        for child in reversed(self.ids.sections_box.children):
            if isinstance(child, BigButton):
                found.append(child)
            elif isinstance(child, MDGridLayout):
                found.extend(w for w in reversed(child.children) if isinstance(w, BigButton))
        return found

    def _on_request_release(self, button: BigButton) -> None:
        self.dispatch("on_request_contact", button.resident_id, button.resident_name)

    def on_request_contact(self, resident_id: str, resident_name: str) -> None:
        """Default handler: the request flow binds to this event."""
