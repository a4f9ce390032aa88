"""Shared fixtures: a real Mosquitto, a real backend (in-process, free ports), a headless kiosk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.mosquitto import free_port, mosquitto_broker  # noqa: F401
from tests.helpers import RunningBackend, running_backend

# The kiosk and the CLI must never pick up a developer's own data folders.
os.environ.pop("LIENS_DATABASE_URL", None)
os.environ.pop("LIENS_MQTT_URL", None)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[RunningBackend]:
    """A backend with its own Mosquitto and SQLite, as ``liens serve`` runs by default."""
    with running_backend(tmp_path / "server") as b:
        yield b


@pytest.fixture
def backend_on_mosquitto(tmp_path: Path, mosquitto_broker) -> Iterator[RunningBackend]:  # noqa: F811
    """A backend using a shared Mosquitto 2 with dynamic security (``LIENS_MQTT_URL``)."""
    with running_backend(tmp_path / "server", mqtt_url=mosquitto_broker.url) as b:
        yield b


@pytest.fixture(params=["own", "shared"])
def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningBackend]:
    """The same test with the backend's own Mosquitto and with a shared one."""
    if request.param == "own":
        with running_backend(tmp_path / "server") as b:
            yield b
    else:
        broker = request.getfixturevalue("mosquitto_broker")
        with running_backend(tmp_path / "server", mqtt_url=broker.url) as b:
            yield b


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last.

    Playwright's sync API keeps an event loop running on the main thread while its session
    browser is open; pytest-asyncio tests collected after it could not start their own loop.
    """
    items.sort(key=lambda item: "tests/browser/" in item.nodeid or "/browser/" in item.nodeid)
