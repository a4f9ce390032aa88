"""Test helpers: run a real backend in-process and a real headless kiosk as a subprocess."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from backend.app import create_app
from backend.runtime import Backend
from backend.services import directory
from backend.services import tablets as tablet_service
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def poll_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """``predicate()``'s first truthy value, polled every 0.1 s; AssertionError after
    ``timeout`` seconds, naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class RunningBackend:
    backend: Backend
    settings: Settings
    base_url: str

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self.backend.db

    def env(self) -> dict[str, str]:
        """Environment for a ``liens`` subprocess (CLI) talking to this backend."""
        s = self.settings
        env = dict(os.environ)
        env.update(
            LIENS_DATA_DIR=str(s.data_dir),
            LIENS_DATABASE_URL=s.database_url,
            LIENS_SECRET_KEY=s.secret_key,
            LIENS_PUBLIC_URL=self.base_url,
            LIENS_EMBEDDED_MQTT_PORT=str(self.backend.mqtt_port),
        )
        if s.mqtt_url:
            env["LIENS_MQTT_URL"] = s.mqtt_url
        else:
            env.pop("LIENS_MQTT_URL", None)
        return env

    # Shortcuts over the service layer, as staff would act through the CLI or the dashboard.
    def seed(self, *, residents: int = 1, contacts: int = 1) -> dict[str, Any]:
        with self.db.session() as s:
            home = directory.add_home(session=s, name="Les Tilleuls", by="test")
            rs = [
                directory.add_resident(session=s, home_id=home.id, first_name=n, by="test")
                for n in ["Marcel", "Odette", "Lucien"][:residents]
            ]
            cs = [
                directory.add_contact(session=s, home_id=home.id, display_name=n, by="test")
                for n in ["Julie", "Thomas", "Claire", "Paul"][:contacts]
            ]
            tablet = tablet_service.add_tablet(session=s, home_id=home.id, name="Salon", by="test")
            return {
                "home": home.id,
                "residents": [r.id for r in rs],
                "contacts": [c.id for c in cs],
                "tablet": tablet.id,
                "tokens": [c.link_token for c in cs],
            }

    def issue_code(self, tablet_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
        with self.db.session() as s:
            return tablet_service.issue_code(
                session=s,
                tablet_id=tablet_id,
                secret_key=self.settings.secret_key,
                ttl=ttl,
                by="test",
            ).code

    def approve(
        self, resident_id: str, contact_id: str, policy: dict[str, Any] | None = None
    ) -> None:
        with self.db.session() as s:
            directory.approve(
                session=s, resident_id=resident_id, contact_id=contact_id, by="test", policy=policy
            )
            ids = tablet_service.tablets_serving(s, resident_id)
            tablet_service.bump_revisions(s, ids)
        self.backend.publish_configs(ids)


@contextmanager
def running_backend(
    data_dir: Path, *, mqtt_url: str = "", database_url: str = ""
) -> Iterator[RunningBackend]:
    # Bind now and hand the socket to uvicorn: no window in which another process takes the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    http_port = sock.getsockname()[1]
    settings = Settings(
        data_dir=data_dir,
        secret_key="test-secret-key-0123456789abcdef",
        public_url=f"http://127.0.0.1:{http_port}",
        port=http_port,
        mqtt_url=mqtt_url,
        embedded_mqtt_port=0 if not mqtt_url else 1884,
        database_url=database_url or f"sqlite:///{data_dir / 'liens.db'}",
    )
    backend = Backend(settings)
    backend.start()
    server = uvicorn.Server(
        uvicorn.Config(create_app(backend), host="127.0.0.1", port=http_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield RunningBackend(backend, settings, f"http://127.0.0.1:{http_port}")
    finally:
        server.should_exit = True
        thread.join(10)
        backend.stop()


class HeadlessKiosk:
    """``liens kiosk --headless`` in a subprocess; its JSON lines arrive in a queue."""

    def __init__(
        self,
        data_dir: Path,
        server_url: str,
        code: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        cmd = [
            sys.executable,
            "-m",
            "liens",
            "kiosk",
            "--headless",
            "--data-dir",
            str(data_dir),
            "--server",
            server_url,
        ]
        if code:
            cmd += ["--code", code]
        cmd += extra or []
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"event": "unparsable", "line": line})

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching kiosk event in {timeout} s; seen {self.seen}; "
                    f"stderr: {''.join(self.stderr[-20:])}"
                )
            try:
                event = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if predicate(event):
                return event

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def contact_names(event: dict[str, Any]) -> list[str]:
    return sorted(c["name"] for c in event.get("contacts", []))
