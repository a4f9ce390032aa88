"""Liens's own Mosquitto: what ``liens serve`` runs and supervises without ``LIENS_MQTT_URL``.

The same Mosquitto 2 and dynamic security as production (one ACL engine, one code path), on
loopback, restarted when it dies, stopped with the server, and never left running by a server
that was killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from backend.broker.mosquitto import SECURITY_SETTINGS, broker_config
from tests.fixtures.mosquitto import PROJECT_CONF, free_port
from tests.helpers import ROOT, RunningBackend, poll_until


def _directives(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, value.strip())
    return out


def test_own_broker_has_the_production_security_settings_and_listens_on_loopback(
    tmp_path: Path,
) -> None:
    own = _directives(broker_config(tmp_path, "127.0.0.1", 1884, "/x/dynsec.so"))
    production = _directives(PROJECT_CONF.read_text())
    for key, value in SECURITY_SETTINGS:
        assert own[key] == value
        assert production.get(key) == value, f"deploy/mosquitto/mosquitto.conf: {key}"
    assert own["allow_anonymous"] == "false"
    assert own["listener"] == "1884 127.0.0.1"
    assert own["plugin"] == "/x/dynsec.so"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purpose.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_own_broker_is_started_again_when_it_dies_and_the_backend_reconnects(
    backend: RunningBackend,
) -> None:
    broker, bridge = backend.backend.broker, backend.backend.bridge
    assert broker is not None and bridge is not None
    first = broker.pid
    assert first is not None and bridge.connected
    connections = bridge.connections
    killed = time.monotonic()
    os.kill(first, signal.SIGKILL)
    poll_until(lambda: broker.pid not in (None, first), 10, "a new Mosquitto process")
    poll_until(lambda: bridge.connected and bridge.connections > connections, 20, "the bridge back")
    print(f"broker killed → backend connected again in {time.monotonic() - killed:.2f} s")
    assert broker.restarts == 1
    # The restarted broker kept the accounts (dynsec file) and the backend's role: it publishes.
    ids = backend.seed()
    backend.approve(ids["residents"][0], ids["contacts"][0])


def test_a_killed_server_leaves_no_broker_behind_and_starts_again(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("LIENS_MQTT_URL", None)
    http_port, mqtt_port = free_port(), free_port()
    env.update(
        LIENS_DATA_DIR=str(tmp_path / "data"),
        LIENS_SECRET_KEY="a-test-secret-key-0123456789abcdef",
        LIENS_PORT=str(http_port),
        LIENS_EMBEDDED_MQTT_PORT=str(mqtt_port),
    )
    pid_file = tmp_path / "data" / "mosquitto" / "mosquitto.pid"

    def serve() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "liens", "serve"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def healthy() -> bool:
            try:
                health = requests.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1).json()
            except requests.RequestException:
                return False
            return bool(health["mqtt_connected"]) and health["broker"] == "own"

        poll_until(healthy, 30, "liens serve healthy on its own broker")
        return process

    server = serve()
    broker_pid = int(pid_file.read_text())
    assert _alive(broker_pid)
    server.kill()  # SIGKILL: no chance to stop its broker itself
    server.wait(10)
    poll_until(lambda: not _alive(broker_pid), 5, "the broker gone with its server")
    again = serve()  # the port is free, the folder reused (same credentials, same accounts)
    second_pid = int(pid_file.read_text())
    try:
        assert second_pid != broker_pid
    finally:
        again.terminate()  # SIGTERM: a clean stop, the broker with it
        assert again.wait(15) == 0
    assert not _alive(second_pid)
    assert not pid_file.exists()
