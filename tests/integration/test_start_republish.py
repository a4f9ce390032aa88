"""A backend restarted with a fleet serves at once, republishing every configuration behind.

- The batched builder (``tablet_service.build_configs``) gives byte for byte what
  ``build_config`` gives tablet by tablet, on a seeded home with every case a configuration has.
- 300 enrolled tablets, a real Mosquitto 2: the backend answers HTTP within 1 s of its start while
  the republish runs in its background thread; afterwards the broker holds every tablet's
  retained configuration, and a change made during the republish (one made in the middle of a
  batch, between its build and its publish, and one made by staff from another thread) is what
  the tablets hold at the end.
- Two replicas on PostgreSQL: only one republishes.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

import backend.runtime as runtime
from backend.db import Database
from backend.models import (
    Approval,
    ApprovalStatus,
    Contact,
    Home,
    Photo,
    PhotoStatus,
    Resident,
    Staff,
    Tablet,
    tablet_residents,
    utcnow,
)
from backend.services import tablets as tablet_service
from bench.republish import seed
from kiosk.protocol import Envelope, MessageType
from tests.fixtures.mosquitto import MosquittoBroker
from tests.helpers import RunningBackend, running_backend

TABLETS = 300


def retained_configs(broker: MosquittoBroker, expected: int, timeout: float = 30.0) -> dict:
    """Every retained ``liens/v1/tablets/+/config`` on the broker: tablet id -> data."""
    seen: dict[str, dict[str, Any]] = {}
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.retain and message.payload:
            tablet_id = message.topic.split("/")[3]
            seen[tablet_id] = json.loads(message.payload)["data"]
            if len(seen) >= expected:
                done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(broker.admin_username, broker.admin_password)
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe("liens/v1/tablets/+/config", qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        done.wait(timeout)
        time.sleep(0.3)  # anything beyond ``expected`` would show up too
    finally:
        client.loop_stop()
        client.disconnect()
    return dict(seen)


def rename_home(rb: RunningBackend, home_id: str, name: str) -> list[str]:
    """A staff change, as the dashboard makes it: commit with a revision bump, then publish."""
    with rb.db.session() as s:
        home = s.get(Home, home_id)
        assert home is not None
        home.name = name
        ids = sorted(t.id for t in home.tablets if t.enrolled_at and not t.retired_at)
        tablet_service.bump_revisions(s, ids)
    rb.backend.publish_configs(ids)
    return ids


def home_of(db: Database, tablet_id: str) -> str:
    with db.session() as s:
        tablet = s.get(Tablet, tablet_id)
        assert tablet is not None
        return tablet.home_id


# -- the batched builder --------------------------------------------------------------------------


def test_batched_builder_matches_per_tablet(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'liens.db'}")
    db.migrate()
    ids = seed(db, tablets=12, per_home=6, residents=8, contacts=2)
    now = utcnow()
    with db.session() as s:
        residents = list(s.scalars(select(Resident).order_by(Resident.home_id, Resident.id)))
        approvals = list(s.scalars(select(Approval).order_by(Approval.id)))
        # Every case a configuration has: an inactive resident (assigned and not), a contact
        # whose link is off, a suspended approval, a retired tablet's neighbour, photos approved
        # (with and without a decision date), pending, and from a contact no longer approved.
        residents[0].active = False
        residents[9].active = False
        s.get(Contact, approvals[1].contact_id).link_active = False  # type: ignore[union-attr]
        approvals[2].status = ApprovalStatus.SUSPENDED.value
        for n, approval in enumerate(approvals[:12]):
            for k, status in enumerate(
                (PhotoStatus.APPROVED, PhotoStatus.PENDING, PhotoStatus.APPROVED)
            ):
                s.add(
                    Photo(
                        home_id=s.get(Resident, approval.resident_id).home_id,  # type: ignore[union-attr]
                        resident_id=approval.resident_id,
                        contact_id=approval.contact_id,
                        sha256=f"{n:02d}{k:062d}",
                        size=1000 + n,
                        width=800,
                        height=600,
                        thumb_sha256=f"{k:02d}{n:062d}",
                        thumb_size=100 + k,
                        caption=f"photo {n}-{k}",
                        status=status.value,
                        decided_at=None if k == 2 else now + timedelta(seconds=n * 3 + k),
                    )
                )
        s.execute(tablet_residents.insert().values(tablet_id=ids[0], resident_id=residents[9].id))
        s.get(Tablet, ids[2]).retired_at = now  # type: ignore[union-attr]
        staff = s.scalars(select(Staff)).first()
        assert staff is not None
        staff.pin_hash = ""
    with db.session() as s:
        tablets = list(s.scalars(select(Tablet).where(Tablet.id.in_(ids))))
        per_tablet = {
            t.id: Envelope(type=MessageType.CONFIG, data=tablet_service.build_config(s, t)).data
            for t in tablets
        }
    with db.session() as s:
        batched = tablet_service.build_configs(
            s, list(s.scalars(select(Tablet).where(Tablet.id.in_(ids))))
        )
    assert set(batched) == set(per_tablet)
    for tablet_id, data in per_tablet.items():
        assert json.dumps(batched[tablet_id]) == json.dumps(data), tablet_id
    shown = [c for data in per_tablet.values() for r in data["residents"] for c in r["contacts"]]
    photos = [p for data in per_tablet.values() for r in data["residents"] for p in r["photos"]]
    assert shown and photos
    db.engine.dispose()


# -- a restart with a fleet -----------------------------------------------------------------------


def test_restart_serves_at_once_and_republishes_every_tablet(
    tmp_path: Path,
    mosquitto_broker: MosquittoBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'liens.db'}"
    db = Database(database_url)
    db.migrate()
    ids = seed(db, tablets=TABLETS, per_home=10, residents=10)
    ordered = runtime.enrolled_tablet_ids(db)
    # A change in the middle of a batch, between its build and its publish: the batch's older
    # configurations of that home's tablets must not go out over the newer ones.
    raced_home = home_of(db, ordered[150])
    # A change from another thread (staff on the dashboard) while batches go on.
    staff_home = home_of(db, ordered[-1])
    db.engine.dispose()
    raced: list[str] = []
    holder: dict[str, RunningBackend] = {}
    real_build = tablet_service.build_configs

    def racing(session: Any, tablets: list[Tablet]) -> dict[str, dict[str, Any]]:
        time.sleep(0.1)  # batches of 20, each 0.1 s longer: the republish lasts on any machine
        configs = real_build(session, tablets)
        if not raced and any(t.home_id == raced_home for t in tablets):
            raced.extend(rename_home(holder["rb"], raced_home, "Renommée pendant le lot"))
        return configs

    monkeypatch.setattr(runtime, "REPUBLISH_BATCH", 20)
    # A first start, stopped while it republishes: the thread ends cleanly between batches
    # (this also pays the process's first imports, which a restart pays before any of this).
    monkeypatch.setattr(tablet_service, "build_configs", lambda s, t: (time.sleep(0.1), {})[1])
    with running_backend(
        tmp_path / "data", mqtt_url=mosquitto_broker.url, database_url=database_url
    ) as first:
        job = first.backend.republisher
        assert job is not None and not job.done.is_set()
        stopping = time.monotonic()
        first.backend.republisher = None
        job.stop()
        assert job.done.is_set() and time.monotonic() - stopping < 2.0
    # The restart.
    monkeypatch.setattr(tablet_service, "build_configs", racing)
    started = time.monotonic()
    with running_backend(
        tmp_path / "data", mqtt_url=mosquitto_broker.url, database_url=database_url
    ) as rb:
        holder["rb"] = rb
        page = requests.get(f"{rb.base_url}/healthz", timeout=5)
        login = requests.get(f"{rb.base_url}/login", timeout=5)
        answered = time.monotonic() - started
        job = rb.backend.republisher
        assert job is not None
        assert page.status_code == 200 and login.status_code < 500
        print(f"first page {answered:.2f} s after the start")
        assert answered < 1.0, f"first page {answered:.2f} s after the start"
        assert not job.done.is_set(), "the republish should still be going on"
        # Staff change another home while the republish goes on.
        changed = rename_home(rb, staff_home, "Renommée par le personnel")
        assert not job.done.is_set()
        assert job.done.wait(120), "republish did not finish"
        took = time.monotonic() - started
        assert job.last is not None and not job.last.failed
        held = retained_configs(mosquitto_broker, TABLETS)
        with rb.db.session() as s:
            revisions = dict(s.execute(select(Tablet.id, Tablet.config_revision)).all())
    assert raced, "the mid-batch change did not happen"
    assert set(held) == set(ids), f"{len(held)} of {TABLETS} configurations on the broker"
    for tablet_id in raced:
        assert held[tablet_id]["home"]["name"] == "Renommée pendant le lot", tablet_id
    for tablet_id in changed:
        assert held[tablet_id]["home"]["name"] == "Renommée par le personnel", tablet_id
    for tablet_id, data in held.items():
        assert data["revision"] == revisions[tablet_id], tablet_id
    assert took > 0.5  # the republish really overlapped the first page and the change


def test_broker_failure_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch the broker does not acknowledge is retried later; the thread never dies."""
    from backend.mqtt.bridge import ConfigBatch

    db = Database(f"sqlite:///{tmp_path / 'liens.db'}")
    db.migrate()
    ids = seed(db, tablets=30, per_home=10, residents=3)
    calls: list[int] = []

    class FlakyBridge:
        connected = True

        def config_marks(self, tablet_ids: list[str]) -> dict[str, int]:
            return dict.fromkeys(tablet_ids, 0)

        def publish_config_batch(
            self, configs: dict[str, Any], marks: dict[str, int], *, timeout: float
        ) -> ConfigBatch:
            calls.append(len(configs))
            if len(calls) == 1:
                raise OSError("the socket broke")  # a bug or a broken socket: logged, retried
            if len(calls) == 2:
                return ConfigBatch(failed=list(configs), error="no PUBACK")
            return ConfigBatch(published=list(configs))

    monkeypatch.setattr(runtime, "RETRY_DELAYS_S", (0.05,))
    monkeypatch.setattr(runtime, "REPUBLISH_BATCH", 10)
    job = runtime.RepublishJob(db, FlakyBridge())  # type: ignore[arg-type]
    job.start()
    assert job.done.wait(10)
    job.stop()
    assert job.attempts == 2 and job.published == len(ids)
    db.engine.dispose()


# -- several replicas ----------------------------------------------------------------------------


def test_one_replica_republishes(
    tmp_path: Path,
    mosquitto_broker: MosquittoBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replica A republishes, B leaves it to A. A change made on B while A holds a batch (built,
    not yet acknowledged) waits for that batch (its rows are read FOR SHARE), then publishes:
    the tablets hold B's change at the end."""
    from tests.replicas import fresh_postgres, postgres_available

    why = postgres_available()
    if why:
        pytest.skip(why)
    with fresh_postgres() as url:
        db = Database(url)
        db.migrate()
        ids = seed(db, tablets=100, per_home=10, residents=5)
        ordered = runtime.enrolled_tablet_ids(db)
        raced_home = home_of(db, ordered[-1])  # in the last batch
        db.engine.dispose()
        replicas: dict[str, RunningBackend] = {}
        raced: list[str] = []
        changes: list[threading.Thread] = []
        real_build = tablet_service.build_configs

        def racing(session: Any, tablets: list[Tablet]) -> dict[str, dict[str, Any]]:
            time.sleep(0.3)  # batches of 20, each 0.3 s longer: B starts while A republishes
            configs = real_build(session, tablets)
            if not changes and any(t.home_id == raced_home for t in tablets):
                deadline = time.monotonic() + 10
                while "b" not in replicas and time.monotonic() < deadline:
                    time.sleep(0.05)

                def change() -> None:
                    raced.extend(rename_home(replicas["b"], raced_home, "Changée sur B"))

                changes.append(threading.Thread(target=change))
                changes[0].start()
                time.sleep(0.5)  # B's transaction now waits for this batch's rows
                assert not raced, "the change should wait for the batch being published"
            return configs

        monkeypatch.setattr(runtime, "REPUBLISH_BATCH", 20)
        monkeypatch.setattr(tablet_service, "build_configs", racing)
        with (
            running_backend(tmp_path / "a", mqtt_url=mosquitto_broker.url, database_url=url) as a,
            running_backend(tmp_path / "b", mqtt_url=mosquitto_broker.url, database_url=url) as b,
        ):
            replicas["b"] = b
            ja, jb = a.backend.republisher, b.backend.republisher
            assert ja is not None and jb is not None
            assert ja.done.wait(60) and jb.done.wait(60)
            assert changes, "the change during the batch did not happen"
            changes[0].join(30)
            assert jb.left_to_another_replica and not ja.left_to_another_replica
            assert ja.published >= len(ids) and jb.published == 0
            held = retained_configs(mosquitto_broker, len(ids))
        assert set(held) == set(ids)
        assert raced
        for tablet_id in raced:
            assert held[tablet_id]["home"]["name"] == "Changée sur B", tablet_id


# -- a change made while the broker is away -------------------------------------------------------


def test_change_made_while_the_broker_is_down_reaches_the_tablets_when_it_returns(
    tmp_path: Path,
) -> None:
    """Staff revoke or rename while Mosquitto restarts: the publish fails, nothing is lost — when
    the backend's connection comes back it republishes, and the broker holds the new version."""
    from backend.mqtt.bridge import BrokerUnavailable
    from tests.fixtures.mosquitto import free_port, running_mosquitto

    database_url = f"sqlite:///{tmp_path / 'liens.db'}"
    db = Database(database_url)
    db.migrate()
    ids = seed(db, tablets=20, per_home=10, residents=3)
    home_id = home_of(db, sorted(ids)[0])
    db.engine.dispose()
    port = free_port()
    workdir = tmp_path / "mosquitto"
    with running_mosquitto(workdir, port=port) as broker:
        url = broker.url
        with running_backend(tmp_path / "data", mqtt_url=url, database_url=database_url) as rb:
            job = rb.backend.republisher
            assert job is not None and job.done.wait(60)
            bridge = rb.backend.bridge
            assert bridge is not None
            broker.process.terminate()
            broker.process.wait(10)
            deadline = time.monotonic() + 10
            while bridge.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not bridge.connected
            try:
                changed = rename_home(rb, home_id, "Changée sans courtier")
            except BrokerUnavailable:
                with rb.db.session() as s:
                    home = s.get(Home, home_id)
                    assert home is not None and home.name == "Changée sans courtier"
                    changed = sorted(t.id for t in home.tablets if t.enrolled_at)
            assert changed
            with running_mosquitto(workdir, port=port) as again:
                deadline = time.monotonic() + 60  # paho retries every 1..30 s
                held: dict[str, Any] = {}
                while time.monotonic() < deadline:
                    held = retained_configs(again, len(ids), timeout=5)
                    if all(
                        held.get(t, {}).get("home", {}).get("name") == "Changée sans courtier"
                        for t in changed
                    ):
                        break
                for tablet_id in changed:
                    assert held[tablet_id]["home"]["name"] == "Changée sans courtier", tablet_id
