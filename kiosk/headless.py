"""``liens kiosk --headless``: the kiosk core with no window, one JSON line per event.

Tests, benchmarks and the fleet simulator read these lines. Contacts are printed as the screens
would show them (``kiosk.viewmodel``), so a test of this output is a test of what a resident
would see.

Calls are driven by **commands as JSON lines on stdin**, one object per line:

* ``{"cmd": "call", "approval_id": "..."}`` — dial a contact (a refusal prints ``call_refused``);
* ``{"cmd": "answer"}``, ``{"cmd": "decline"}``, ``{"cmd": "hangup"}``;
* ``{"cmd": "stats"}`` — prints ``{"event": "stats", ...}`` (the current or the last call).

Every ``call`` event is printed; the ``ended`` one carries the call's ``stats``. Anything else
on stdin prints ``{"event": "command_error", ...}``; the end of stdin only stops the reading.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any, TextIO

from kiosk import viewmodel
from kiosk.calls import CallRefused
from kiosk.calls.model import CallState
from kiosk.core import KioskCore
from kiosk.enrolment import EnrolmentError
from kiosk.settings import KioskSettings


class JsonLines:
    """Writes one JSON object per line, flushed, from any thread."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        line = dict(event)
        if line.get("event") == "config":
            config = line.pop("config")
            line["contacts"] = [
                {
                    "name": t["name"],
                    "approval_id": t["approval_id"],
                    "resident_id": t["resident_id"],
                }
                for t in viewmodel.contact_tiles(config)
            ]
            line["residents"] = [r["name"] for r in viewmodel.residents(config)]
        line.setdefault("t", round(time.time(), 3))
        with self.lock:
            self.out.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.out.flush()


def run_command(core: KioskCore, line: str, emit: JsonLines) -> None:
    """Carry out one command line read on stdin."""
    try:
        command = json.loads(line)
        if not isinstance(command, dict):
            raise ValueError("a command is a JSON object")
    except ValueError as exc:
        emit({"event": "command_error", "detail": str(exc), "line": line[:200]})
        return
    name = command.get("cmd")
    if name == "call":
        approval_id = command.get("approval_id")
        if not isinstance(approval_id, str):
            emit({"event": "command_error", "detail": "call needs an approval_id"})
            return
        try:
            core.start_call(approval_id)
        except CallRefused as exc:
            emit(
                {
                    "event": "call_refused",
                    "approval_id": approval_id,
                    "reason": exc.reason,
                    "next_allowed": exc.next_allowed.isoformat() if exc.next_allowed else None,
                }
            )
    elif name == "answer":
        core.answer_call()
    elif name == "decline":
        core.decline_call()
    elif name == "hangup":
        core.hang_up()
    elif name == "stats":
        call = core.call
        emit(
            {
                "event": "stats",
                "state": call.state if call else CallState.IDLE,
                **core.call_stats().as_dict(),
            }
        )
    else:
        emit({"event": "command_error", "detail": f"unknown command {name!r}"})


def read_commands(core: KioskCore, commands: TextIO, emit: JsonLines) -> None:
    for line in commands:
        if line.strip():
            run_command(core, line.strip(), emit)


def run(
    settings: KioskSettings,
    *,
    code: str | None = None,
    out: TextIO = sys.stdout,
    commands: TextIO | None = sys.stdin,
    media: str = "auto",
    answer: str = "manual",
) -> int:
    emit = JsonLines(out)
    core = KioskCore(settings, media=media, answer=answer)

    def listener(event: dict[str, Any]) -> None:
        if event.get("event") == "call" and event.get("state") == CallState.ENDED:
            event = {**event, "stats": core.call_stats().as_dict()}
        emit(event)

    core.set_listener(listener)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if code:
        try:
            core.enrol(settings.server_url, code)
        except EnrolmentError as exc:
            emit({"event": "enrolment_failed", "reason": exc.reason, "detail": exc.detail})
            return 2
    elif core.needs_enrolment:
        emit(
            {"event": "not_enrolled", "hint": "run with --code CODE from 'liens admin tablet add'"}
        )
        return 2
    else:
        if core.config is not None:
            emit(
                {
                    "event": "config",
                    "revision": core.config.get("revision"),
                    "config": core.config,
                    "cached": True,
                }
            )
        core.start()
    if commands is not None:
        threading.Thread(
            target=read_commands, args=(core, commands, emit), name="commands", daemon=True
        ).start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        core.close()
        emit({"event": "stopped"})
    return 0
