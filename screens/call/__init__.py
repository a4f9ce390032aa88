"""The call screens: outgoing (it rings at the relative's), incoming (the tablet rings), in call,
the calm sentence shown when a call ends or cannot start, and the staff PIN keypad of a
supervised call.

The screens only show what the app sets on them and dispatch what the resident touched; the app
(``screens.app``) routes the core's call events to them and calls the core.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent

KV_FILES = (
    _HERE / "common.kv",
    _HERE / "outgoing.kv",
    _HERE / "incoming.kv",
    _HERE / "incall.kv",
    _HERE / "message.kv",
    _HERE / "supervise.kv",
)

__all__ = ["KV_FILES"]
