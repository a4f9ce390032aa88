"""The same backend on a real PostgreSQL (``LIENS_DATABASE_URL``): migrations, enrolment, config.

Uses the PostgreSQL server of the machine (``LIENS_TEST_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/postgres``); each test gets a fresh database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import HeadlessKiosk, RunningBackend, contact_names, running_backend

ADMIN_URL = os.environ.get("LIENS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}: {exc}")
    name = f"liens_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_backend(tmp_path: Path, postgres_url: str) -> Iterator[RunningBackend]:
    with running_backend(tmp_path / "server", database_url=postgres_url) as b:
        yield b


def test_postgres_enrolment_approval_and_code_reuse(
    pg_backend: RunningBackend, tmp_path: Path
) -> None:
    b = pg_backend
    assert b.db.engine.dialect.name == "postgresql"
    ids = b.seed(contacts=2)
    b.approve(ids["residents"][0], ids["contacts"][0])
    code = b.issue_code(ids["tablet"])
    kiosk = HeadlessKiosk(tmp_path / "kiosk", b.base_url, code=code)
    try:
        shown = kiosk.wait_for(lambda e: e["event"] == "config")
        assert contact_names(shown) == ["Julie"]
        b.approve(ids["residents"][0], ids["contacts"][1])
        shown = kiosk.wait_for(lambda e: e["event"] == "config" and len(e["contacts"]) == 2)
        assert contact_names(shown) == ["Julie", "Thomas"]
    finally:
        kiosk.stop()
    again = requests.post(f"{b.base_url}/api/v1/enrol", json={"code": code}, timeout=10)
    assert again.status_code == 403 and again.json()["detail"]["reason"] == "used_code"


def test_one_code_enrols_one_tablet_even_when_raced(pg_backend: RunningBackend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ids = pg_backend.seed()
    code = pg_backend.issue_code(ids["tablet"])

    def attempt(_: int) -> int:
        url = f"{pg_backend.base_url}/api/v1/enrol"
        return requests.post(url, json={"code": code}, timeout=20).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses == [200, 403, 403, 403, 403, 403]
