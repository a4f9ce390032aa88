"""Calls between a resident's tablet and a relative's browser (docs/calls.md).

:mod:`kiosk.calls.model` is the call's one vocabulary (states, reasons, directions, signalling
messages), shared with the backend; :mod:`kiosk.calls.state` holds the plain data the screens
read (no aiortc import); :mod:`kiosk.calls.engine` the asyncio call engine;
:mod:`kiosk.calls.media` the sources and sinks. The engine and the media are imported lazily by
the core, so that loading the core does not load aiortc and FFmpeg; the names below are loaded
on first use, so that the backend importing the model does not load numpy either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.calls.state import CallInfo, CallRefused, CallStats, LatestFrame

__all__ = ["CallInfo", "CallRefused", "CallStats", "LatestFrame"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kiosk.calls import state

        return getattr(state, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
