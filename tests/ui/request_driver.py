"""UI scenarios of "Demander un contact", run like ``tests/ui/driver.py`` (one process each).

``python -m tests.ui.request_driver SCENARIO OUT_DIR`` under Xvfb; the last line of stdout is
``RESULT:{json}``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# First: the base driver sets the window's size before anything creates the Kivy window.
import tests.ui.driver as ui
from screens.app import LiensApp
from tests.ui.fake_core import FakeCore, config, contact
from tests.ui.limits import GIVE_UP_SECONDS

CONTACTS = [
    contact("c1", "ap-1", "Nadia", "Éducatrice référente"),
    contact("c2", "ap-2", "Karim", "Frère"),
]


class RequestCore(FakeCore):
    """The fake core plus ``request_contact``, recording what ``KioskCore`` puts in its outbox."""

    def request_contact(self, resident_id: str, who: str, relation: str) -> str:
        return self.record(
            "contact_request", {"resident_id": resident_id, "who": who, "relation": relation}
        )


def with_kinds(data: dict[str, Any], kinds: dict[str, str]) -> dict[str, Any]:
    for resident in data["residents"]:
        resident["kind"] = kinds.get(resident["id"], resident["kind"])
    return data


def scenario_youth(out_dir: Path) -> tuple[RequestCore, Callable[..., ui.Steps]]:
    """A child's home shows the button; relation -> confirmation records the event; home."""
    core = RequestCore(config=with_kinds(config([("y1", "Léa", CONTACTS)]), {"y1": "youth"}))

    def steps(app: LiensApp, result: dict[str, Any]) -> ui.Steps:
        home = app.home_screen
        yield from ui.wait_until(
            lambda: len(home.tiles()) == 2 and len(home.request_buttons()) == 1
        )
        yield 0.5
        (button,) = home.request_buttons()
        result["button_text"] = button.text
        result["button_on_screen"] = ui.on_screen(button)
        result["button_size"] = list(button.size)
        result["tiles_on_screen"] = all(ui.on_screen(t) for t in home.tiles())
        result["screenshot_home"] = ui.screenshot(out_dir, "home-youth.png")
        yield from ui.tap(button)
        yield from ui.wait_until(
            lambda: (
                app.manager.current == "request_contact" and not app.manager.transition.is_active
            ),
            timeout=15,
        )
        yield 0.6
        choose = app.request_flow.choose_screen
        keys = [
            *("mother", "father", "grandmother", "grandfather", "brother"),
            *("sister", "aunt", "uncle", "friend", "other"),
        ]
        result["relation_labels"] = [choose.ids[k].text for k in keys]
        result["relations_on_screen"] = all(ui.on_screen(choose.ids[k]) for k in keys)
        result["relation_sizes"] = [list(choose.ids[k].size) for k in keys]
        result["title"] = choose.ids.title.text
        result["screenshot_request"] = ui.screenshot(out_dir, "request.png")
        # "Back" leaves without asking anything.
        yield from ui.tap(choose.ids.back)
        yield from ui.wait_until(
            lambda: app.manager.current == "home" and not app.manager.transition.is_active,
            timeout=15,
        )
        yield 0.6  # the slide back home
        result["records_after_back"] = list(core.records)
        yield from ui.tap(home.request_buttons()[0])
        yield from ui.wait_until(
            lambda: (
                app.manager.current == "request_contact" and not app.manager.transition.is_active
            ),
            timeout=15,
        )
        yield 0.4
        yield from ui.tap(choose.ids.grandmother)
        yield from ui.tap(choose.ids.grandmother)  # a second tap: still one request
        yield from ui.wait_until(
            lambda: app.manager.current == "request_sent" and not app.manager.transition.is_active,
            timeout=15,
        )
        yield 0.6
        sent = app.request_flow.sent_screen
        result["sent_text"] = sent.ids.sentence.text
        result["screenshot_sent"] = ui.screenshot(out_dir, "request-sent.png")
        result["records"] = list(core.records)
        yield from ui.tap(sent.ids.back)
        yield from ui.wait_until(
            lambda: app.manager.current == "home" and not app.manager.transition.is_active,
            timeout=15,
        )
        result["back_home"] = app.manager.current

    return core, steps


def scenario_senior(out_dir: Path) -> tuple[RequestCore, Callable[..., ui.Steps]]:
    """A senior never sees the button; on a shared tablet only the child's section has it."""
    core = RequestCore(config=config([("s1", "Jeanne", CONTACTS)]))

    def steps(app: LiensApp, result: dict[str, Any]) -> ui.Steps:
        home = app.home_screen
        yield from ui.wait_until(lambda: len(home.tiles()) == 2)
        yield 0.4
        result["senior_buttons"] = len(home.request_buttons())
        both = with_kinds(
            config([("s1", "Jeanne", CONTACTS[:1]), ("y1", "Léa", [])], revision=2),
            {"y1": "youth"},
        )
        core.emit_from_thread({"event": "config", "revision": 2, "config": both})
        # A shared tablet: the picker; Léa has no PIN yet on a shared tablet -> "ask an educator",
        # so Jeanne's home (a senior: no button) is what opens here.
        picker = app.who.picker_screen
        yield from ui.wait_until(
            lambda: (
                app.manager.current == "picker"
                and len(picker.tiles()) == 2
                and not app.manager.transition.is_active
            ),
            timeout=15,
        )
        yield 0.3
        yield from ui.tap(picker.tiles()[0])
        yield from ui.wait_until(
            lambda: app.manager.current == "home" and not app.manager.transition.is_active,
            timeout=15,
        )
        result["senior_buttons_shared"] = len(home.request_buttons())
        # Léa, alone on the tablet again (no PIN: nobody else to hide from), has the button.
        lea = with_kinds(config([("y1", "Léa", [])], revision=3), {"y1": "youth"})
        core.emit_from_thread({"event": "config", "revision": 3, "config": lea})
        yield from ui.wait_until(lambda: len(home.request_buttons()) == 1, timeout=15)
        yield 0.4
        result["mixed_buttons"] = [b.resident_id for b in home.request_buttons()]
        result["screenshot_mixed"] = ui.screenshot(out_dir, "home-youth-no-contact.png")
        yield from ui.tap(home.request_buttons()[0])
        yield from ui.wait_until(
            lambda: (
                app.manager.current == "request_contact" and not app.manager.transition.is_active
            ),
            timeout=15,
        )
        result["request_for"] = app.request_flow.choose_screen.resident_id
        yield 0.3
        yield from ui.tap(app.request_flow.choose_screen.ids.friend)
        yield from ui.wait_until(
            lambda: app.manager.current == "request_sent" and not app.manager.transition.is_active,
            timeout=15,
        )
        result["records"] = list(core.records)
        # The confirmation goes home on its own.
        yield from ui.wait_until(lambda: app.manager.current == "home", timeout=12)
        result["home_by_itself"] = True

    return core, steps


SCENARIOS = {"youth": scenario_youth, "senior": scenario_senior}


def main(argv: list[str]) -> int:
    return ui.drive(
        argv,
        SCENARIOS,
        timeout=GIVE_UP_SECONDS,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
