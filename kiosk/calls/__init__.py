"""Calls between a resident's tablet and a relative's browser (docs/calls.md).

:mod:`kiosk.calls.state` holds the plain data the screens read (no aiortc import);
:mod:`kiosk.calls.engine` the asyncio call engine; :mod:`kiosk.calls.media` the sources and sinks.
The engine and the media are imported lazily by the core, so that loading the core does not load
aiortc and FFmpeg.
"""

from kiosk.calls.state import CallInfo, CallRefused, CallStats, LatestFrame

__all__ = ["CallInfo", "CallRefused", "CallStats", "LatestFrame"]
