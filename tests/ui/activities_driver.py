"""UI scenarios of the activities (photos, memory game, day and time), one process each.

``python -m tests.ui.activities_driver SCENARIO OUT_DIR`` under Xvfb; the last line of stdout is
``RESULT:{json}``. The photos come from a real :class:`kiosk.photos.PhotoCache` filled from a
small HTTP server that speaks like the backend's photo API (``tests.unit.test_photo_cache``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# First: the base driver sets the window's size before anything creates the Kivy window.
import tests.ui.driver as ui
from kiosk.activities import day_and_time
from kiosk.photos import PhotoCache
from screens.app import LiensApp
from tests.ui.fake_core import FakeCore, config, contact
from tests.ui.limits import GIVE_UP_SECONDS
from tests.unit.test_photo_cache import PASSWORD, USER, PhotoServer, jpeg

CONTACTS = [
    contact("c1", "ap-1", "Marie Dupont", "Fille"),
    contact("c2", "ap-2", "Lucie", "Petite-fille"),
]
PHOTOS = [  # (colour, caption, added_at): newest first, as the backend sends them
    ("#8AB6D6", "Ton anniversaire, avec toute la famille", "2026-11-23T09:00:00+00:00"),
    ("#E07A5F", "Le jardin au printemps", "2026-11-22T09:00:00+00:00"),
    ("#81B29A", "", "2026-11-21T09:00:00+00:00"),
    ("#F2CC8F", "Léa à la plage", "2026-11-20T09:00:00+00:00"),
]


class ActivityCore(FakeCore):
    """The fake core plus a real photo cache (``core.photos``), as ``KioskCore`` has."""

    def __init__(self, *, photos: PhotoCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.photos = photos


def wait_screen(app: LiensApp, name: str, timeout: float = 15) -> ui.Steps:
    yield from ui.wait_until(
        lambda: app.manager.current == name and not app.manager.transition.is_active,
        timeout=timeout,
    )
    yield 0.3


def activity_tile(app: LiensApp, key: str) -> Any:
    return next(t for t in app.activities.row.tile_widgets() if t.key == key)


def open_activity(app: LiensApp, key: str) -> ui.Steps:
    yield from wait_screen(app, "home")
    yield from ui.tap(activity_tile(app, key))
    yield from wait_screen(app, f"activity_{key}")


def back_home(app: LiensApp, screen: Any) -> ui.Steps:
    yield from ui.tap(screen.ids.back)
    yield from wait_screen(app, "home")


def places(widgets: list[Any]) -> list[list[int]]:
    return [place_of(w) for w in widgets]


def place_of(widget: Any) -> list[int]:
    """Where ``widget`` is in the window: x, y, width, height."""
    return [round(v) for v in (*widget.to_window(widget.x, widget.y), widget.width, widget.height)]


def tap_card(game: Any, cards: list[Any], index: int, moves: list[int]) -> ui.Steps:
    """A finger on card ``index`` once the grid holds still; done when the game turned it up.

    The grid is laid out again after a tap (the sentence above it changes), on a loaded
    machine sometimes only frames later: a finger lifted after its card moved away is no tap
    at all, and the game would wait for a second card forever. ``moves`` counts the taps
    after which the cards had moved.
    """
    before = places(cards)
    yield from ui.wait_settled(cards)
    if places(cards) != before:
        moves.append(index)
    card = cards[index]
    seen: list[str] = []

    def note(event: str) -> None:
        seen.append(f"{event} state={card.state} at {place_of(card)}")

    card.bind(on_press=lambda *_a: note("press"), on_release=lambda *_a: note("release"))
    aimed = card.to_window(*card.center)
    yield from ui.tap(card)
    try:
        yield from ui.wait_until(lambda: game.cards[index].face_up, timeout=10)
    except TimeoutError:
        raise TimeoutError(
            f"tap on card {index} lost: aimed at {aimed}, card now at {place_of(card)}, "
            f"events {seen}, disabled={card.disabled}, stage={card.parent and card.parent.parent}"
            f", up={[c.face_up for c in game.cards]}"
        ) from None


def play_to_the_end(screen: Any, result: dict[str, Any], out_dir: Path, shot: str) -> ui.Steps:
    """A wrong try first (nothing bad happens), then every pair, with real taps."""
    yield from ui.wait_until(lambda: len(screen.cards()) == 2 * screen.game.pairs, timeout=10)
    game, cards = screen.game, screen.cards()
    moves: list[int] = []
    wrong = next(i for i, c in enumerate(game.cards) if c.pair != game.cards[0].pair)
    yield from tap_card(game, cards, 0, moves)
    yield from tap_card(game, cards, wrong, moves)
    result["wrong_try_message"] = screen.message
    result["wrong_try_up"] = [game.cards[0].face_up, game.cards[wrong].face_up]
    yield from ui.wait_until(lambda: all(c.flip_scale == 1.0 for c in cards), timeout=8)  # flips
    yield 0.3  # the frame that shows it
    if shot:
        result[f"screenshot_{shot}"] = ui.screenshot(out_dir, f"activity-{shot}.png")
    # They turn back by themselves (after 2.5 s).
    yield from ui.wait_until(lambda: not any(c.showing_face for c in cards), timeout=15)
    result["covered_by_itself"] = True
    while not game.finished:
        first = next(i for i, c in enumerate(game.cards) if not c.matched)
        second = next(
            i for i, c in enumerate(game.cards) if c.pair == game.cards[first].pair and i != first
        )
        yield from tap_card(game, cards, first, moves)
        yield from tap_card(game, cards, second, moves)
        yield from ui.wait_until(lambda: game.cards[second].matched, timeout=10)  # noqa: B023
    result["all_on_screen"] = all(ui.on_screen(c) for c in cards)
    result["card_sizes"] = sorted({(round(c.width), round(c.height)) for c in cards})
    result.setdefault("cards_moved_before_tap", []).append(moves)
    yield from ui.wait_until(lambda: screen.stage == "done", timeout=10)
    yield 0.6


def photo_server_and_cache(out_dir: Path) -> tuple[PhotoServer, PhotoCache, list[dict[str, Any]]]:
    server = PhotoServer().__enter__()
    entries = [
        server.add(
            f"p{n}",
            jpeg(colour, (1280, 960), text=caption),
            jpeg(colour, (320, 240)),
            caption=caption,
            added_at=added_at,
            **{"from": "Marie Dupont" if n % 2 else "Lucie"},
        )
        for n, (colour, caption, added_at) in enumerate(PHOTOS, start=1)
    ]
    cache = PhotoCache(out_dir / "cache")
    return server, cache, entries


def scenario_photos(out_dir: Path) -> tuple[ActivityCore, Callable[..., ui.Steps]]:
    """The slideshow from the cache: caption, arrows, "Nouveau", one heart; then the memory game
    with the family's thumbnails."""
    server, cache, entries = photo_server_and_cache(out_dir)
    data = config([("r1", "Jeanne", CONTACTS)])
    data["residents"][0]["photos"] = entries
    summary = cache.sync(data, server_url=server.url, auth=(USER, PASSWORD))
    assert not summary.failed, summary
    cache.mark_seen("r1", "p4")  # seen on an earlier day
    core = ActivityCore(config=data, photos=cache)

    def steps(app: LiensApp, result: dict[str, Any]) -> ui.Steps:
        yield from ui.wait_until(lambda: len(app.activities.row.tile_widgets()) == 3, timeout=15)
        yield from open_activity(app, "photos")
        screen = app.activities.screen("photos")
        yield 0.4

        def state() -> dict[str, Any]:
            return {
                "source": Path(screen.source).name,
                "caption": screen.ids.caption.text,
                "sender": screen.ids.sender.text,
                "position": screen.ids.position.text,
                "new": screen.ids.new_badge.opacity == 1 and screen.ids.new_badge.text,
            }

        result["first"] = state()
        result["expected_first"] = Path(cache.path(entries[0]["sha256"])).name
        result["arrows"] = [list(screen.ids.previous.size), list(screen.ids.next.size)]
        result["screenshot_photos"] = ui.screenshot(out_dir, "activity-photos.png")
        yield from ui.tap(screen.ids.next)
        yield 0.3
        result["second"] = state()
        yield from ui.tap(screen.ids.previous)
        yield 0.3
        result["back_to_first"] = state()
        yield from ui.tap(screen.ids.heart)
        yield 0.2
        yield from ui.tap(screen.ids.heart)  # a second tap of a shaky finger: one heart
        yield 0.4
        result["heart_text"] = screen.ids.heart_label.text
        result["screenshot_heart"] = ui.screenshot(out_dir, "activity-photos-heart.png")
        yield from ui.tap(screen.ids.previous)  # from the first to the last (the oldest)
        yield 0.3
        result["last"] = state()
        yield from ui.tap(screen.ids.previous)
        yield 0.3
        result["third"] = state()
        yield from back_home(app, screen)
        result["records_photos"] = list(core.records)

        # Opened again: what was seen is not new any more; the heart is remembered.
        yield from open_activity(app, "photos")
        yield 0.3
        result["reopened"] = state()
        result["reopened_heart_text"] = screen.ids.heart_label.text
        yield from back_home(app, screen)

        # The memory game with the family's thumbnails (4 photos: enough for 4 pairs).
        yield from open_activity(app, "memory")
        memory = app.activities.screen("memory")
        yield from ui.tap(memory.ids.pairs_4)
        yield from play_to_the_end(memory, result, out_dir, "memory-family-try")
        result["family_pictures"] = memory.pictures
        result["family_faces"] = sorted(Path(f).name for f in memory.game.faces)
        result["expected_family_faces"] = sorted(
            Path(cache.path(e["thumb_sha256"])).name for e in entries
        )
        yield from back_home(app, memory)
        result["records"] = list(core.records)
        server.__exit__(None, None, None)

    return core, steps


def scenario_memory(out_dir: Path) -> tuple[ActivityCore, Callable[..., ui.Steps]]:
    """Home's row; 4 pairs played to the end with built-in pictures; "Rejouer"; 8 pairs."""
    core = ActivityCore(config=config([("r1", "Jeanne", CONTACTS)]), photos=PhotoCache(out_dir))

    def steps(app: LiensApp, result: dict[str, Any]) -> ui.Steps:
        row = app.activities.row
        yield from ui.wait_until(lambda: len(row.tile_widgets()) == 3, timeout=15)
        yield from wait_screen(app, "home")
        yield 0.5
        result["tiles"] = [(t.key, t.name, t.icon) for t in row.tile_widgets()]
        result["tile_sizes"] = [list(t.size) for t in row.tile_widgets()]
        result["tiles_on_screen"] = all(ui.on_screen(t) for t in row.tile_widgets())
        result["contacts_on_screen"] = all(ui.on_screen(t) for t in app.home_screen.tiles())
        result["screenshot_home"] = ui.screenshot(out_dir, "activity-home.png")
        yield from open_activity(app, "memory")
        screen = app.activities.screen("memory")
        result["choose_title"] = screen.ids.message.text
        result["choices"] = [screen.ids[k].text for k in ("pairs_4", "pairs_6", "pairs_8")]
        result["screenshot_choose"] = ui.screenshot(out_dir, "activity-memory-choose.png")
        yield from ui.tap(screen.ids.pairs_4)
        yield from play_to_the_end(screen, result, out_dir, "memory-try")
        result["pictures"] = screen.pictures
        result["done_text"] = screen.ids.done_text.text
        result["done_buttons"] = [screen.ids.again.text, screen.ids.other_size.text]
        result["screenshot_done"] = ui.screenshot(out_dir, "activity-memory-done.png")
        yield from ui.tap(screen.ids.again)  # "Rejouer": the same size again
        yield from ui.wait_until(lambda: screen.stage == "play" and len(screen.cards()) == 8)
        result["again_pairs"] = screen.game.pairs
        yield from ui.tap(screen.ids.back)  # leave mid-game: still recorded
        yield from wait_screen(app, "home")
        yield from open_activity(app, "memory")
        yield from ui.tap(screen.ids.pairs_8)
        yield from ui.wait_until(lambda: len(screen.cards()) == 16, timeout=10)
        game, cards = screen.game, screen.cards()
        pair = [i for i, c in enumerate(game.cards) if c.pair == 0]
        moves: list[int] = []
        yield from tap_card(game, cards, pair[0], moves)
        yield from tap_card(game, cards, pair[1], moves)
        yield from ui.wait_until(lambda: game.cards[pair[1]].matched, timeout=10)
        result.setdefault("cards_moved_before_tap", []).append(moves)
        # Both faces shown and still: right after the match the second card's flip may not
        # have started yet (all scales still 1.0), and the screenshot caught it edge-on.
        yield from ui.wait_until(
            lambda: (
                all(cards[i].showing_face for i in pair) and all(c.flip_scale == 1.0 for c in cards)
            ),
            timeout=8,
        )
        yield 0.3
        result["sixteen_on_screen"] = all(ui.on_screen(c) for c in cards)
        result["sixteen_sizes"] = sorted({(round(c.width), round(c.height)) for c in cards})
        result["screenshot_8"] = ui.screenshot(out_dir, "activity-memory-8.png")
        # Every other pair: each of the sixteen places must take a finger (a hidden "Other
        # number of cards" once lay over one of them and sent the game back to "how many").
        for other in range(1, game.pairs):
            pair = [i for i, c in enumerate(game.cards) if c.pair == other]
            yield from tap_card(game, cards, pair[0], moves)
            yield from tap_card(game, cards, pair[1], moves)
            yield from ui.wait_until(lambda p=pair: game.cards[p[1]].matched, timeout=10)
        yield from ui.wait_until(lambda: screen.stage == "done", timeout=10)
        result["eight_pairs_done"] = game.finished
        yield from back_home(app, screen)
        result["records"] = list(core.records)

    return core, steps


def french_day_and_time() -> list[str]:
    """The four lines of the day-and-time screen in French, as they should read now."""
    phrases = day_and_time(datetime.now(ZoneInfo("Europe/Paris")), "fr")
    return [phrases.weekday.capitalize(), phrases.date, phrases.time, phrases.part.capitalize()]


def scenario_clock(out_dir: Path) -> tuple[ActivityCore, Callable[..., ui.Steps]]:
    """Day and time in French, then in English; a child sees no clock, and no photos yet."""
    core = ActivityCore(config=config([("r1", "Jeanne", CONTACTS)]), photos=PhotoCache(out_dir))

    def steps(app: LiensApp, result: dict[str, Any]) -> ui.Steps:
        row = app.activities.row
        yield from ui.wait_until(lambda: len(row.tile_widgets()) == 3, timeout=15)
        # The minute can turn while the screen opens: what it shows must be one of the
        # readings taken just before and just after.
        expected_fr = [french_day_and_time()]
        yield from open_activity(app, "clock")
        screen = app.activities.screen("clock")
        result["shown_fr"] = [screen.ids[k].text for k in ("weekday", "date", "time", "part")]
        expected_fr.append(french_day_and_time())
        result["expected_fr"] = expected_fr
        result["screenshot_clock"] = ui.screenshot(out_dir, "activity-clock.png")
        yield from back_home(app, screen)

        english = config([("r1", "Jeanne", CONTACTS)], revision=2)
        english["residents"][0]["language"] = "en"
        core.emit_from_thread({"event": "config", "revision": 2, "config": english})
        yield from ui.wait_until(lambda: app.language == "en", timeout=15)
        yield 0.5
        result["tiles_en"] = [t.name for t in row.tile_widgets()]
        weekdays_en = [day_and_time(datetime.now(ZoneInfo("Europe/Paris")), "en").weekday]
        yield from open_activity(app, "clock")
        result["shown_en"] = [screen.ids[k].text for k in ("weekday", "date", "time", "part")]
        weekdays_en.append(day_and_time(datetime.now(ZoneInfo("Europe/Paris")), "en").weekday)
        result["expected_en_weekdays"] = weekdays_en
        result["back_text_en"] = screen.ids.back.text
        result["screenshot_clock_en"] = ui.screenshot(out_dir, "activity-clock-en.png")
        yield from back_home(app, screen)

        youth = config([("y1", "Léa", CONTACTS)], revision=3)
        youth["residents"][0]["kind"] = "youth"
        core.emit_from_thread({"event": "config", "revision": 3, "config": youth})
        yield from ui.wait_until(
            lambda: [t.key for t in row.tile_widgets()] == ["photos", "memory"], timeout=15
        )
        yield from wait_screen(app, "home")
        result["youth_tiles"] = [t.key for t in row.tile_widgets()]
        yield from open_activity(app, "photos")
        photos = app.activities.screen("photos")
        result["empty_text"] = photos.ids.empty.text
        result["screenshot_empty"] = ui.screenshot(out_dir, "activity-photos-empty.png")
        yield from back_home(app, photos)
        result["records"] = list(core.records)

    return core, steps


SCENARIOS = {"memory": scenario_memory, "photos": scenario_photos, "clock": scenario_clock}


def main(argv: list[str]) -> int:
    return ui.drive(
        argv,
        SCENARIOS,
        timeout=GIVE_UP_SECONDS,
        publish=lambda png: png.name.startswith("activity-"),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
