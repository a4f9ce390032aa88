"""Supervised calls and call limits on the Liens app, one scenario per process (under Xvfb).

Launched by ``tests/ui/test_call_policy_screens.py`` as ``python -m tests.ui.call_policy_driver
SCENARIO OUT_DIR``, like ``tests.ui.call_driver`` (whose fake core and helpers it reuses, with
``supervise`` added): the staff PIN keypad before an outgoing and an incoming supervised call,
"Il reste une minute" over the video, and the sentence when staff end a call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.ui import call_driver
from tests.ui.call_driver import (
    JULIE,
    THOMAS,
    FakeCallCore,
    FrameFeeder,
    pattern,
    settled,
)
from tests.ui.driver import Steps, screenshot, tap, wait_until
from tests.ui.fake_core import config


class SupervisedCore(FakeCallCore):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pins: list[str] = []

    def supervise(self, pin: str) -> None:
        self.pins.append(pin)


def type_pin(screen: Any, pin: str) -> Steps:
    for digit in pin:
        yield from tap(screen.ids[f"key_{digit}"])


def scenario_supervised(out_dir: Path) -> tuple[SupervisedCore, Callable[..., Steps]]:
    """Outgoing supervised call: keypad, a wrong PIN, the right one, then it dials. Then an
    incoming one: "Answer" brings the keypad; "Cancel" declines."""
    core = SupervisedCore(config=config([("r1", "Jeanne", [JULIE, THOMAS])]))

    def steps(app: Any, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 2)
        yield 0.3
        yield from tap(app.home_screen.tiles()[0])
        sup = dict(direction="outgoing", supervised=True, pin_attempts_left=3)
        core.call_event("supervising", "call-out-1", supervision="required", **sup)
        yield from settled(app, "call_supervise")
        screen = app.supervise_screen
        result["title"] = screen.title
        result["status_required"] = screen.status
        result["status_font"] = screen.ids.status_label.font_size
        result["key_sizes"] = [list(screen.ids[f"key_{k}"].size) for k in ("1", "0", "ok")]
        yield from type_pin(screen, "13579")
        yield from tap(screen.ids.key_erase)
        result["dots"] = screen.dots
        result["screenshot_keypad"] = screenshot(out_dir, "call-supervise.png")
        yield from tap(screen.ids.key_ok)
        result["pins"] = list(core.pins)
        result["dots_after_ok"] = screen.dots
        core.call_event("supervising", "call-out-1", supervision="checking", **sup)
        yield from wait_until(lambda: screen.checking and "…" in screen.status)
        result["status_checking"] = screen.status
        yield from tap(screen.ids.key_5)
        result["dots_while_checking"] = screen.dots
        sup["pin_attempts_left"] = 2
        core.call_event(
            "supervising", "call-out-1", supervision="required", pin_error="wrong", **sup
        )
        yield from wait_until(lambda: not screen.checking)
        yield 0.2
        result["status_wrong"] = screen.status
        yield from type_pin(screen, "2468")
        yield from tap(screen.ids.key_ok)
        result["pins"] = list(core.pins)
        core.call_event("dialling", "call-out-1", direction="outgoing", supervision="ok")
        yield from settled(app, "call_outgoing")
        result["after_supervision"] = app.manager.current
        core.call_event("ended", "call-out-1", direction="outgoing", reason="cancelled")
        yield from wait_until(lambda: app.manager.current == "home", timeout=6)

        core.call_event("incoming", "call-in-1", supervised=True, supervision=None)
        yield from settled(app, "call_incoming")
        yield from tap(app.incoming_screen.ids.answer_button)
        core.call_event("supervising", "call-in-1", supervised=True, supervision="required")
        yield from settled(app, "call_supervise")
        result["incoming_title"] = screen.title
        yield from tap(screen.ids.cancel_button)
        result["hang_ups"] = core.hang_ups
        core.call_event("ended", "call-in-1", reason="declined")
        yield from settled(app, "call_message")

    return core, steps


def scenario_limits(out_dir: Path) -> tuple[SupervisedCore, Callable[..., Steps]]:
    """In call: "Il reste une minute" in large type; the limit ends it; then staff end one."""
    core = SupervisedCore(config=config([("r1", "Jeanne", [JULIE, THOMAS])]))

    def steps(app: Any, result: dict[str, Any]) -> Steps:
        yield from wait_until(lambda: len(app.home_screen.tiles()) == 2)
        feed = FrameFeeder(core.remote_video, pattern(640, 480))
        try:
            core.call_event("connecting", "call-in-1")
            core.call_event("connected", "call-in-1")
            yield from settled(app, "call_incall")
            label = app.incall_screen.ids.warning_label
            result["warning_before"] = [app.incall_screen.warning_text, label.opacity]
            core.call_event("connected", "call-in-1", warning="one_minute")
            yield from wait_until(lambda: label.opacity == 1)
            yield 0.3
            result["warning_text"] = label.text
            result["warning_font_px"] = label.font_size
            result["warning_on_screen"] = [round(v) for v in (*label.pos, *label.size)]
            result["screenshot_warning"] = screenshot(out_dir, "call-warning.png")
            core.call_event(
                "ended", "call-in-1", reason="policy", ended_by="limit", warning="one_minute"
            )
            yield from settled(app, "call_message")
            result["limit_sentence"] = app.message_screen.sentence
            yield from wait_until(lambda: app.manager.current == "home", timeout=6)

            core.call_event("connected", "call-in-2")
            yield from settled(app, "call_incall")
            result["warning_next_call"] = app.incall_screen.warning_text
            core.call_event("ended", "call-in-2", reason="policy", ended_by="staff")
            yield from settled(app, "call_message")
            result["staff_sentence"] = app.message_screen.sentence
        finally:
            feed.stop()

    return core, steps


SCENARIOS = {"supervised": scenario_supervised, "limits": scenario_limits}

if __name__ == "__main__":
    call_driver.SCENARIOS = SCENARIOS  # type: ignore[assignment]
    call_driver.DOCS_NAMES = ("call-supervise.png", "call-warning.png")  # type: ignore[assignment]
    sys.exit(call_driver.main(sys.argv[1:]))
