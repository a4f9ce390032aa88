"""``liens serve``: the backend, its broker (its own Mosquitto by default) and the web server."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

from backend.app import create_app
from backend.runtime import Backend
from backend.settings import Settings, get_settings

log = logging.getLogger(__name__)


def serve(
    *, host: str | None = None, port: int | None = None, settings: Settings | None = None
) -> int:
    settings = settings or get_settings()
    # uvicorn shuts down on SIGTERM, then raises the signal again: with Python's default
    # handler the process would die there, before the broker, the bridge and the jobs stop.
    signal.signal(signal.SIGTERM, _exit)
    backend = Backend(settings)
    backend.start()
    try:
        uvicorn.run(
            create_app(backend),
            host=host or settings.host,
            port=port or settings.port,
            log_level="warning",
        )
    finally:
        backend.stop()
    return 0


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
