"""Two ``liens serve`` processes on one real Mosquitto 2 and one real PostgreSQL (docs/scale.md).

- 50 tablets (the real ``kiosk.link.Link``, each with its own enrolled broker account and SQLite
  outbox) send 10,000 events, some of them twice; both replicas consume them through the MQTT 5
  shared subscription, and the table holds every id exactly once.
- A call whose family page is on replica A while the tablet's signals reach both replicas: the
  ones B receives are forwarded to A, and the call goes through as on one server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from kiosk.link import event_item
from tests.fixtures.mosquitto import MosquittoBroker, running_mosquitto
from tests.replicas import (
    Home,
    Replica,
    Tablet,
    count_events,
    enrol,
    fresh_postgres,
    issue_code,
    postgres_available,
    replica,
    seed,
)

TABLETS = 50
EVENTS = 10_000
DUPLICATE_EVERY = 25  # one event in 25 is published a second time, same id


@dataclass
class Cluster:
    broker: MosquittoBroker
    database_url: str
    home: Home
    a: Replica
    b: Replica
    workdir: Path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    why = postgres_available()
    if why:
        pytest.skip(why)
    with running_mosquitto(tmp_path / "mosquitto") as broker, fresh_postgres() as url:
        home = seed(url, TABLETS)  # migrates once, before any replica starts
        a = replica(tmp_path, "a", url, broker)
        b = replica(tmp_path, "b", url, broker)
        try:
            a.start()
            b.start()
            yield Cluster(broker, url, home, a, b, tmp_path)
        finally:
            a.stop()
            b.stop()


def enrol_all(c: Cluster, count: int) -> list[Tablet]:
    def one(i: int) -> Tablet:
        server = (c.a, c.b)[i % 2]  # behind the load balancer, either replica enrols
        code = issue_code(c.database_url, c.home.tablets[i])
        return enrol(server.base_url, code, c.workdir / "tablets" / f"{i}.db")

    (c.workdir / "tablets").mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        tablets = list(pool.map(one, range(count)))
    for tablet in tablets:
        assert tablet.link.wait_connected(20), "a tablet did not connect"
    return tablets


def test_two_replicas_store_10000_events_exactly_once(cluster: Cluster) -> None:
    tablets = enrol_all(cluster, TABLETS)
    per_tablet = EVENTS // TABLETS
    sent: list[str] = []
    lock = threading.Lock()
    try:

        def stream(tablet: Tablet) -> None:
            link = tablet.link
            ids = []
            for n in range(per_tablet):
                item = event_item(link.tablet_id, "heartbeat", {"battery": n % 100, "n": n})
                tablet.store.enqueue(item)
                link._publish_item(item)
                if n % DUPLICATE_EVERY == 0:
                    # A duplicate, as after a lost PUBACK: same envelope, same id.
                    link.client.publish(item.topic, item.payload, qos=1)
                ids.append(item.id)
            with lock:
                sent.extend(ids)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(stream, tablets))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows, distinct, per = count_events(cluster.database_url)
            pending = sum(t.store.outbox_size() for t in tablets)
            if distinct >= EVENTS and pending == 0:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        rows, distinct, per = count_events(cluster.database_url)
        print(f"\n{EVENTS} events stored in {elapsed:.1f} s; per replica: {per}")
        assert len(set(sent)) == EVENTS
        assert (rows, distinct) == (EVENTS, EVENTS), per
        assert set(per) == {"a", "b"}, per
        assert min(per.values()) > EVENTS // 10, per  # both really share the load
        assert all(t.store.outbox_size() == 0 for t in tablets)
    finally:
        for tablet in tablets:
            tablet.stop()


class Page:
    """A family page's WebSocket on one replica."""

    def __init__(self, server: Replica, token: str) -> None:
        url = server.base_url.replace("http://", "ws://") + f"/f/{token}/ws?lang=fr"
        self.ws = connect(url, open_timeout=10)
        self.hello = self.expect("hello")

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))

    def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"page never received {kind!r}")
            try:
                message = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                continue
            if message.get("type") == kind:
                return dict(message)


def _broadcast_from_b(c: Cluster, what: str, body: dict[str, Any]) -> None:
    """What ``CallHub.end_calls_threadsafe`` on replica B publishes (same account, same topic)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(c.broker.admin_username, c.broker.admin_password)
    client.connect(c.broker.host, c.broker.port)
    client.loop_start()
    try:
        payload = json.dumps({"from": "b", **body}).encode()
        client.publish(f"liens/v1/backend/all/{what}", payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _forwarded(server: Replica) -> int:
    return server.log().count("forwarded to ")


def test_call_with_page_on_one_replica_and_tablet_signals_on_both(cluster: Cluster) -> None:
    (tablet,) = enrol_all(cluster, 1)
    page = Page(cluster.a, cluster.home.token)
    try:
        resident = cluster.home.resident
        assert [r["id"] for r in page.hello["residents"]] == [resident]
        deadline = time.monotonic() + 10
        while not page.hello["residents"][0]["available"]:  # the tablet's "online" status
            assert time.monotonic() < deadline, page.hello
            time.sleep(0.2)
            page.ws.close()
            page = Page(cluster.a, cluster.home.token)
        page.send(type="call", resident_id=resident)
        call_id = page.expect("calling")["call_id"]
        assert tablet.expect_signal("invite")["call_id"] == call_id
        before = _forwarded(cluster.b)
        # Each signal reaches one replica of the shared subscription (they take turns):
        # the ones replica B gets must find replica A, which holds the page and the call.
        tablet.link.send_signal({"kind": "ringing", "call_id": call_id})
        page.expect("ringing")
        tablet.link.send_signal({"kind": "accept", "call_id": call_id})
        page.expect("accepted")
        page.send(type="offer", call_id=call_id, sdp="v=0 offer")
        assert tablet.expect_signal("offer")["sdp"] == "v=0 offer"
        tablet.link.send_signal({"kind": "answer", "call_id": call_id, "sdp": "v=0 answer"})
        assert page.expect("answer")["sdp"] == "v=0 answer"
        tablet.link.send_signal({"kind": "hangup", "call_id": call_id})
        assert page.expect("ended")["reason"] == "hung_up"
        assert _forwarded(cluster.b) > before, cluster.b.log()[-3000:]
        assert _forwarded(cluster.a) == 0  # A held the call: it never had to forward

        # Staff end a call from a page served by replica B: B broadcasts, A ends the call it holds.
        page.send(type="call", resident_id=resident)
        call_id = page.expect("calling")["call_id"]
        tablet.expect_signal("invite")
        tablet.link.send_signal({"kind": "accept", "call_id": call_id})
        page.expect("accepted")
        _broadcast_from_b(cluster, "end_calls", {"call_id": call_id, "reason": "policy"})
        assert page.expect("ended")["reason"] == "policy"
        assert tablet.expect_signal("hangup")["by"] == "staff"
    finally:
        page.ws.close()
        tablet.stop()


def _admin_on(c: Cluster, server: Replica) -> tuple[Any, str]:
    """An administrator logged in on ``server``'s dashboard: (their HTTP session, CSRF token)."""
    import re

    import requests

    from backend.auth import accounts, sessions
    from backend.db import Database
    from backend.models import StaffSession

    db = Database(c.database_url)
    try:
        with db.session() as s:
            accounts.add_staff(
                session=s,
                email="direction@example.org",
                name="Direction",
                password="correct horse battery staple",
                role="admin",
                by="test",
            )
        http = requests.Session()
        form = http.get(f"{server.base_url}/staff/login", timeout=10).text
        match = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert match, form
        r = http.post(
            f"{server.base_url}/staff/login",
            data={
                "email": "direction@example.org",
                "password": "correct horse battery staple",
                "csrf_token": match.group(1),
            },
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 303, r.text
        with db.session() as s:
            row = s.get(StaffSession, sessions.token_hash(http.cookies["liens_staff"]))
            assert row is not None
            return http, row.csrf_token
    finally:
        db.engine.dispose()


def test_a_regenerated_link_closes_its_pages_on_every_replica(cluster: Cluster) -> None:
    """Staff regenerate a link on replica B's dashboard: the old link's pages open on A and on
    B both close at once (B's apply step closes its own and broadcasts ``close_pages``)."""
    from websockets.exceptions import ConnectionClosed

    pages = {"a": Page(cluster.a, cluster.home.token), "b": Page(cluster.b, cluster.home.token)}
    http, csrf = _admin_on(cluster, cluster.b)
    started = time.monotonic()
    r = http.post(
        f"{cluster.b.base_url}/staff/contacts/{cluster.home.contact}/link/regenerate",
        data={"csrf_token": csrf},
        allow_redirects=False,
        timeout=15,
    )
    assert r.status_code == 303, r.text
    closed: dict[str, tuple[float, int | None]] = {}
    for name, page in pages.items():
        try:
            while True:
                page.ws.recv(timeout=5)
        except ConnectionClosed as exc:
            closed[name] = (time.monotonic() - started, exc.rcvd.code if exc.rcvd else None)
        except TimeoutError:
            raise AssertionError(f"the page on replica {name} is still open") from None
    print(f"old link's pages closed: {closed}")
    assert all(code == 4410 and seconds <= 1.0 for seconds, code in closed.values()), closed


def test_cli_revoke_ends_a_call_held_by_a_replica(cluster: Cluster) -> None:
    """``liens admin revoke`` from another process: its broadcast reaches the replica holding
    the call, which ends it on both sides."""
    import subprocess
    import sys

    (tablet,) = enrol_all(cluster, 1)
    page = Page(cluster.a, cluster.home.token)
    try:
        deadline = time.monotonic() + 10
        while not page.hello["residents"][0]["available"]:  # the tablet's "online" status
            assert time.monotonic() < deadline, page.hello
            time.sleep(0.2)
            page.ws.close()
            page = Page(cluster.a, cluster.home.token)
        page.send(type="call", resident_id=cluster.home.resident)
        call_id = page.expect("calling")["call_id"]
        tablet.expect_signal("invite")
        tablet.link.send_signal({"kind": "accept", "call_id": call_id})
        page.expect("accepted")
        env = {k: v for k, v in cluster.a.env.items() if k != "LIENS_REPLICA_ID"}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "liens", "admin", "revoke", "--resident",
             cluster.home.resident, "--contact", cluster.home.contact],
            env=env, capture_output=True, text=True, timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["applied"]["broadcast"] == ["end_calls"]
        assert page.expect("ended", timeout=5)["reason"] == "policy"
        elapsed = time.monotonic() - started
        assert tablet.expect_signal("hangup")["reason"] == "policy"
        print(f"CLI revoke on two replicas: the call ended {elapsed:.2f} s after the command began")
    finally:
        page.ws.close()
        tablet.stop()


def test_compose_file_runs_two_replicas_behind_a_proxy() -> None:
    """``deploy/compose.yaml``: what a département installs (no Docker here: parsed, not run)."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"proxy", "backend-a", "backend-b", "mosquitto", "postgres", "coturn"} <= set(services)
    replicas = [s for name, s in services.items() if name.startswith("backend-")]
    ids = {s["environment"]["LIENS_REPLICA_ID"] for s in replicas}
    assert len(ids) == len(replicas) == 2  # one stable id per replica
    for service in replicas:
        env = service["environment"]
        assert env["LIENS_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert (
            env["LIENS_MQTT_URL"].startswith("mqtt://")
            and "@mosquitto:1883" in env["LIENS_MQTT_URL"]
        )
        assert service["command"][:2] == ["liens", "serve"]
    assert services["backend-b"]["depends_on"]["backend-a"]["condition"] == "service_healthy"
    caddyfile = compose["configs"]["caddyfile"]["content"]
    assert "backend-a:8000" in caddyfile and "backend-b:8000" in caddyfile
    assert "1883" not in str(services["mosquitto"].get("ports"))  # backends only, not published
    assert (root / "deploy" / "mosquitto" / "mosquitto.conf").exists()
    assert (root / "deploy" / "coturn" / "turnserver.conf").exists()
    assert (root / "deploy" / "Dockerfile").exists()


def test_a_photo_heart_reaches_the_relatives_page_with_two_replicas(cluster: Cluster) -> None:
    """The production path: Mosquitto, two replicas sharing the events, PostgreSQL."""
    import requests

    from tests.integration.test_photos import jpeg_with_gps

    c = cluster
    upload = requests.post(
        f"{c.a.base_url}/f/{c.home.token}/photos",
        files=[
            ("resident", (None, c.home.resident)),
            ("photo", ("p.jpg", jpeg_with_gps(), "image/jpeg")),
        ],
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    photo_id = upload.json()["photos"][0]["id"]
    (tablet,) = enrol_all(c, 1)
    try:
        link = tablet.link
        started = time.monotonic()
        for _ in range(3):  # hearts from three taps: the outbox sends each once, the page says one
            item = event_item(
                link.tablet_id,
                "photo_heart",
                {"photo_id": photo_id, "resident_id": c.home.resident},
            )
            tablet.store.enqueue(item)
            link._publish_item(item)

        def liked() -> dict[str, Any] | None:
            for replica in (c.a, c.b):
                page = requests.get(f"{replica.base_url}/f/{c.home.token}/photos", timeout=10)
                photo = page.json()["photos"][0]
                if photo["liked_by"] != ["Marcel"]:
                    return None
            return dict(photo)

        deadline = time.monotonic() + 15
        photo = liked()
        while photo is None and time.monotonic() < deadline:
            time.sleep(0.1)
            photo = liked()
        assert photo is not None, "the resident's heart never reached the relative's page"
        print(
            f"heart on the tablet → on both replicas' pages in {time.monotonic() - started:.2f} s"
        )
        assert photo["hearts"] >= 1
    finally:
        tablet.stop()
