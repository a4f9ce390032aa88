"""Helpers for several ``liens serve`` processes on one real Mosquitto and one real PostgreSQL.

Used by ``tests/integration/test_replicas.py``, ``tests/integration/test_crash.py`` and
``bench/fleet.py``. Tablets here are the real :class:`kiosk.link.Link` (its SQLite outbox, QoS 1,
its own enrolled credentials), without the rest of the kiosk.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from backend.db import Database
from backend.services import directory
from backend.services import tablets as tablet_service
from kiosk.link import Link
from kiosk.settings import Credentials
from kiosk.store import Store
from tests.fixtures.mosquitto import MosquittoBroker, free_port

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "LIENS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET = "replica-test-secret-0123456789abcdef"


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new PostgreSQL database for one test (SQLAlchemy URL); dropped afterwards."""
    import psycopg

    admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    name = f"liens_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    base = base.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def postgres_available() -> str | None:
    """None when the test PostgreSQL answers, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return f"no PostgreSQL at {POSTGRES_ADMIN_URL}: {exc}"
    return None


@dataclass
class Replica:
    """One ``liens serve`` process."""

    replica_id: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "liens", "serve", "--port", str(self.port)],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.replica_id} exited:\n{self.log()[-3000:]}")
            try:
                health = requests.get(f"{self.base_url}/healthz", timeout=2).json()
                if health.get("mqtt_connected"):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"replica {self.replica_id} not ready:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def replica(
    workdir: Path, replica_id: str, database_url: str, broker: MosquittoBroker, **env: str
) -> Replica:
    port = free_port()
    data_dir = workdir / replica_id
    data_dir.mkdir(parents=True, exist_ok=True)
    environ = dict(os.environ)
    environ.update(
        LIENS_DATA_DIR=str(data_dir),
        LIENS_DATABASE_URL=database_url,
        LIENS_MQTT_URL=broker.url,
        LIENS_SECRET_KEY=SECRET,
        LIENS_PUBLIC_URL=f"http://127.0.0.1:{port}",
        LIENS_REPLICA_ID=replica_id,
        LIENS_LOG_LEVEL="INFO",
        **env,
    )
    return Replica(replica_id, port, environ, workdir / f"{replica_id}.log")


@dataclass
class Home:
    home: str
    resident: str
    contact: str
    token: str
    tablets: list[str]


def seed(database_url: str, tablets: int) -> Home:
    """One home, one resident, one approved relative, ``tablets`` tablets serving the home."""
    db = Database(database_url)
    db.migrate()
    try:
        with db.session() as s:
            home = directory.add_home(session=s, name="Les Tilleuls", by="test")
            resident = directory.add_resident(
                session=s, home_id=home.id, first_name="Marcel", by="test"
            )
            contact = directory.add_contact(
                session=s, home_id=home.id, display_name="Julie", by="test"
            )
            directory.approve(session=s, resident_id=resident.id, contact_id=contact.id, by="test")
            ids = [
                tablet_service.add_tablet(session=s, home_id=home.id, name=f"T{i}", by="test").id
                for i in range(tablets)
            ]
            return Home(home.id, resident.id, contact.id, contact.link_token, ids)
    finally:
        db.engine.dispose()


def issue_code(database_url: str, tablet_id: str) -> str:
    from datetime import timedelta

    db = Database(database_url)
    try:
        with db.session() as s:
            return tablet_service.issue_code(
                session=s,
                tablet_id=tablet_id,
                secret_key=SECRET,
                ttl=timedelta(hours=1),
                by="test",
            ).code
    finally:
        db.engine.dispose()


@dataclass
class Tablet:
    """A tablet's link and outbox, and what it received."""

    link: Link
    store: Store
    inbox: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def stop(self) -> None:
        self.link.stop()
        self.store.close()

    def expect_signal(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"tablet never received {kind!r}") from None
            if event.get("event") == "signal" and event["data"].get("kind") == kind:
                return dict(event["data"])


def enrol(base_url: str, code: str, store_path: Path) -> Tablet:
    """Enrol through the API (the backend registers the tablet in dynsec) and connect."""
    response = requests.post(f"{base_url}/api/v1/enrol", json={"code": code}, timeout=30)
    response.raise_for_status()
    body = response.json()
    credentials = Credentials.from_json({**body, "server_url": base_url})
    store = Store(store_path)
    inbox: queue.Queue[dict[str, Any]] = queue.Queue()
    # A short redelivery delay: what a crashed broker acknowledged and lost goes again soon.
    link = Link(credentials, store, app_version="test", listener=inbox.put, redeliver_s=3.0)
    link.start()
    return Tablet(link, store, inbox)


def count_events(database_url: str) -> tuple[int, int, dict[str, int]]:
    """(rows, distinct ids, rows per replica) in ``tablet_events``."""
    from sqlalchemy import text

    db = Database(database_url)
    try:
        with db.engine.connect() as conn:
            rows, distinct = conn.execute(
                text("SELECT count(*), count(DISTINCT id) FROM tablet_events")
            ).one()
            per = dict(
                conn.execute(
                    text("SELECT received_by, count(*) FROM tablet_events GROUP BY received_by")
                ).all()
            )
        return int(rows), int(distinct), {str(k): int(v) for k, v in per.items()}
    finally:
        db.engine.dispose()
