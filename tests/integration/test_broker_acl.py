"""Per-tablet credentials and topic ACLs on the one broker, Mosquitto 2 with dynamic security:
the backend's own supervised Mosquitto (``liens serve`` with no ``LIENS_MQTT_URL``) and a shared
one started from ``deploy/mosquitto/mosquitto.conf``.

A tablet may connect only with its own password and its own client id, read only its own
config / signal/in / cmd, write only its own status / events / signal/out, and receives nothing
of another tablet, retained messages included; the backend may do anything. Nobody can connect
under a tablet's or the backend's client id and kick it. Unregistering a tablet disconnects it
and locks it out.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from backend.broker.dynsec import DynsecAdmin
from backend.broker.mosquitto import SupervisedMosquitto
from backend.models import TabletEvent
from kiosk.protocol import Channel, Envelope, MessageType, status_payload, topic
from tests.fixtures.mosquitto import MosquittoBroker, running_mosquitto
from tests.helpers import RunningBackend, poll_until

A, B = "tab-a", "tab-b"
PASSWORDS = {A: "password-of-a", B: "password-of-b"}
BACKEND, BACKEND_PASSWORD = "liens-backend", "backend-password"
QUIET_S = 0.5  # how long "nothing arrives" is watched
WAIT_S = 3.0  # how long something that must arrive may take


@dataclass
class Env:
    host: str
    port: int
    admin: DynsecAdmin


@pytest.fixture(params=["own", "shared"])
def env(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Env]:
    """Mosquitto as the backend runs it by default, or as deployed from the production file."""
    if request.param == "own":
        broker = SupervisedMosquitto(tmp_path / "own", port=0)
        broker.start()
        try:
            c = broker.credentials
            with DynsecAdmin(broker.host, broker.port, c.username, c.password) as dynsec:
                dynsec.ensure_backend_role(BACKEND, BACKEND_PASSWORD)
                for tablet, password in PASSWORDS.items():
                    dynsec.register_tablet(tablet, password)
                yield Env(broker.host, broker.port, dynsec)
        finally:
            broker.stop()
    else:
        with running_mosquitto(tmp_path / "mosquitto") as shared:
            dynsec = DynsecAdmin(
                shared.host, shared.port, shared.admin_username, shared.admin_password
            )
            with dynsec:
                dynsec.ensure_backend_role(BACKEND, BACKEND_PASSWORD)
                for tablet, password in PASSWORDS.items():
                    dynsec.register_tablet(tablet, password)
                yield Env(shared.host, shared.port, dynsec)


# -- a small synchronous MQTT client for tests ----------------------------------------------


@dataclass
class Peer:
    client: mqtt.Client
    connack: str
    messages: queue.Queue[mqtt.MQTTMessage] = field(default_factory=queue.Queue)
    subacks: queue.Queue[list[int]] = field(default_factory=queue.Queue)
    disconnected: threading.Event = field(default_factory=threading.Event)

    @property
    def connected(self) -> bool:
        return self.connack == "Success"

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe (QoS 1) and return the SUBACK codes (0x80 = refused)."""
        self.client.subscribe([(f, 1) for f in filters])
        return self.subacks.get(timeout=WAIT_S)

    def publish(self, name: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(name, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)

    def next_message(self, timeout: float = WAIT_S) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def assert_quiet(self, timeout: float = QUIET_S) -> None:
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        pytest.fail(f"unexpected message on {message.topic}: {message.payload!r}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    env: Env,
    username: str | None,
    password: str | None,
    *,
    will: tuple[str, bytes] | None = None,
    client_id: str | None = None,
) -> Peer:
    """Connect and wait for the CONNACK; a refused peer has ``connected`` False.

    A tablet connects under its own id (its account is bound to it), anyone else under a
    random one, unless ``client_id`` says otherwise.
    """
    if client_id is None:
        client_id = username if username in PASSWORDS else f"peer-{uuid.uuid4().hex[:8]}"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        # Never reconnect in a test (paho's network thread would also linger in its wait).
        reconnect_on_failure=False,
    )
    if username is not None:
        client.username_pw_set(username, password)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    done = threading.Event()
    peer = Peer(client, connack="no CONNACK")

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        peer.connack = str(rc)
        done.set()

    def on_disconnect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        peer.disconnected.set()
        done.set()

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, rcs: list[Any], props: Any) -> None:
        peer.subacks.put([int(rc.value) for rc in rcs])

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = lambda c, u, m: peer.messages.put(m)
    client.connect(env.host, env.port, keepalive=30)
    client.loop_start()
    done.wait(WAIT_S)
    if not peer.connected:
        peer.close()
    return peer


@pytest.fixture
def peers(env: Env) -> Iterator[list[Peer]]:
    """Collects peers to close after the test."""
    opened: list[Peer] = []
    yield opened
    for peer in opened:
        peer.close()


def open_peer(
    env: Env, peers: list[Peer], username: str, password: str, *, client_id: str | None = None
) -> Peer:
    peer = connect(env, username, password, client_id=client_id)
    assert peer.connected, f"{username} could not connect: {peer.connack}"
    peers.append(peer)
    return peer


REFUSED = 0x80


# -- the tests --------------------------------------------------------------------------------


def test_tablet_connects_with_its_own_password_only(env: Env, peers: list[Peer]) -> None:
    open_peer(env, peers, A, PASSWORDS[A])
    for username, password in [(A, "wrong"), (A, PASSWORDS[B]), ("tab-zzz", "x"), (None, None)]:
        refused = connect(env, username, password)
        assert not refused.connected, f"{username}/{password} was accepted"


def test_tablet_receives_its_retained_config(env: Env, peers: list[Peer]) -> None:
    backend = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    backend.publish(topic(A, Channel.CONFIG), b'{"for": "a"}', retain=True)

    tablet = open_peer(env, peers, A, PASSWORDS[A])
    assert tablet.subscribe(topic(A, Channel.CONFIG)) == [1]
    message = tablet.next_message()
    assert (message.topic, message.payload, message.retain) == (
        topic(A, Channel.CONFIG),
        b'{"for": "a"}',
        True,
    )


def test_tablet_cannot_subscribe_beyond_its_own_topics(env: Env, peers: list[Peer]) -> None:
    backend = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    backend.publish(topic(B, Channel.CONFIG), b'{"for": "b"}', retain=True)

    tablet = open_peer(env, peers, A, PASSWORDS[A])
    codes = tablet.subscribe(
        topic(B, Channel.CONFIG),
        "liens/v1/tablets/+/config",
        "liens/v1/tablets/tab-a/#",
        "#",
        topic(A, Channel.EVENTS),  # its own, but a channel it only writes
    )
    assert codes == [REFUSED] * 5
    backend.publish(topic(B, Channel.CONFIG), b'{"for": "b", "n": 2}', retain=True)
    backend.publish(topic(B, Channel.CMD), b'{"cmd": "lock"}')
    tablet.assert_quiet()


def test_tablet_publishes_only_its_own_reports(env: Env, peers: list[Peer]) -> None:
    backend = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    assert backend.subscribe(
        "liens/v1/tablets/+/events", "liens/v1/tablets/+/status", "liens/v1/tablets/+/config"
    ) == [1, 1, 1]
    tablet = open_peer(env, peers, A, PASSWORDS[A])

    # Refused publishes are dropped silently (MQTT 3.1.1 has no way to say no to a PUBLISH).
    tablet.publish(topic(B, Channel.EVENTS), b"forged event")
    tablet.publish(topic(B, Channel.STATUS), b"forged status", retain=True)
    tablet.publish(topic(A, Channel.CONFIG), b"own config", retain=True)
    tablet.publish(topic(A, Channel.EVENTS), b"real event")

    message = backend.next_message()
    assert (message.topic, message.payload) == (topic(A, Channel.EVENTS), b"real event")
    backend.assert_quiet()

    # Nothing forged was retained either.
    late = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    late.subscribe(topic(B, Channel.STATUS), topic(A, Channel.CONFIG))
    late.assert_quiet()


def test_backend_uses_every_tablet_topic(env: Env, peers: list[Peer]) -> None:
    backend = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    assert backend.subscribe("liens/v1/tablets/+/signal/out") == [1]
    tablet = open_peer(env, peers, A, PASSWORDS[A])
    assert tablet.subscribe(topic(A, Channel.SIGNAL_IN), topic(A, Channel.CMD)) == [1, 1]

    backend.publish(topic(A, Channel.SIGNAL_IN), b"invite")
    backend.publish(topic(A, Channel.CMD), b"end-call")
    received = {tablet.next_message().payload, tablet.next_message().payload}
    assert received == {b"invite", b"end-call"}

    tablet.publish(topic(A, Channel.SIGNAL_OUT), b"ring")
    assert backend.next_message().payload == b"ring"


def drop_connection(peer: Peer) -> None:
    """Cut the socket without DISCONNECT: the broker then publishes the peer's will."""
    sock = peer.client.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)
    assert peer.disconnected.wait(WAIT_S)
    peer.close()


def test_will_on_own_status_is_delivered(env: Env, peers: list[Peer]) -> None:
    backend = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    assert backend.subscribe("liens/v1/tablets/+/status") == [1]
    tablet = connect(env, A, PASSWORDS[A], will=(topic(A, Channel.STATUS), b"offline"))
    assert tablet.connected
    drop_connection(tablet)
    message = backend.next_message()
    assert (message.topic, message.payload) == (topic(A, Channel.STATUS), b"offline")


def test_will_on_another_tablets_topic_is_not_delivered(env: Env, peers: list[Peer]) -> None:
    backend = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    assert backend.subscribe("liens/v1/tablets/+/status") == [1]
    # Mosquitto accepts the CONNECT but never sends a will its ACL would refuse.
    forger = connect(env, A, PASSWORDS[A], will=(topic(B, Channel.STATUS), b"offline"))
    if forger.connected:
        drop_connection(forger)
    backend.assert_quiet(1.0)


def test_unregistered_tablet_is_disconnected_and_locked_out(env: Env, peers: list[Peer]) -> None:
    tablet = open_peer(env, peers, A, PASSWORDS[A])
    other = open_peer(env, peers, B, PASSWORDS[B])

    env.admin.unregister_tablet(A)
    assert tablet.disconnected.wait(WAIT_S), "the unregistered tablet was not disconnected"
    assert not connect(env, A, PASSWORDS[A]).connected
    assert not other.disconnected.is_set()
    env.admin.unregister_tablet(A)  # idempotent

    # Registering again (a new enrolment) lets it back in with the new password only.
    env.admin.register_tablet(A, "new-password")
    assert not connect(env, A, PASSWORDS[A]).connected
    open_peer(env, peers, A, "new-password")


def test_dynsec_admin_account_can_be_the_backend(mosquitto_broker: MosquittoBroker) -> None:
    """``liens serve`` may use the dynsec admin as its MQTT user: it needs the backend role."""
    broker = mosquitto_broker
    user, password = broker.admin_username, broker.admin_password
    with DynsecAdmin(broker.host, broker.port, user, password) as dynsec:
        dynsec.ensure_backend_role(user)  # the admin may kick itself here: must survive it
        dynsec.ensure_backend_role(user)  # idempotent
        dynsec.register_tablet(A, PASSWORDS[A])
        env = Env(broker.host, broker.port, dynsec)
        opened: list[Peer] = []
        try:
            backend = open_peer(env, opened, user, password)
            backend.publish(topic(A, Channel.CONFIG), b"cfg", retain=True)
            tablet = open_peer(env, opened, A, PASSWORDS[A])
            assert tablet.subscribe(topic(A, Channel.CONFIG)) == [1]
            assert tablet.next_message().payload == b"cfg"
        finally:
            for peer in opened:
                peer.close()


# -- nothing of another tablet, retained messages included -------------------------------------


def _fill_tablet_b(env: Env, peers: list[Peer]) -> Peer:
    """B's retained config (with a PIN verifier, as real configs carry) and retained status."""
    backend = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    backend.publish(topic(B, Channel.CONFIG), b'{"staff_pins": ["argon2-of-b"]}', retain=True)
    other = open_peer(env, peers, B, PASSWORDS[B])
    assert other.subscribe(topic(B, Channel.CONFIG), topic(B, Channel.CMD)) == [1, 1]
    other.publish(topic(B, Channel.STATUS), status_payload(True, app_version="1"), retain=True)
    assert other.next_message().topic == topic(B, Channel.CONFIG)
    return backend


def test_a_tablet_subscribed_to_nothing_receives_nothing_of_another(
    env: Env, peers: list[Peer]
) -> None:
    backend = _fill_tablet_b(env, peers)
    tablet = open_peer(env, peers, A, PASSWORDS[A])  # subscribes to nothing at all
    tablet.assert_quiet(1.0)  # no retained config or status of B at CONNECT
    backend.publish(topic(B, Channel.CONFIG), b'{"staff_pins": ["new"]}', retain=True)
    backend.publish(topic(B, Channel.CMD), b"lock")
    backend.publish(topic(B, Channel.SIGNAL_IN), b"invite")
    # Another tablet (re)connecting, with its own subscriptions, sends A nothing either.
    open_peer(env, peers, B, PASSWORDS[B]).subscribe(topic(B, Channel.CONFIG))
    tablet.assert_quiet()


def test_a_tablet_subscribed_to_its_own_topics_receives_only_its_own(
    env: Env, peers: list[Peer]
) -> None:
    backend = _fill_tablet_b(env, peers)
    backend.publish(topic(A, Channel.CONFIG), b'{"for": "a"}', retain=True)
    tablet = open_peer(env, peers, A, PASSWORDS[A])
    own = (topic(A, Channel.CONFIG), topic(A, Channel.SIGNAL_IN), topic(A, Channel.CMD))
    assert tablet.subscribe(*own) == [1, 1, 1]
    first = tablet.next_message()
    assert (first.topic, first.payload, first.retain) == (own[0], b'{"for": "a"}', True)
    backend.publish(topic(B, Channel.CONFIG), b'{"staff_pins": ["new"]}', retain=True)
    backend.publish(topic(B, Channel.CMD), b"lock")
    tablet.assert_quiet()


# -- client ids: nobody takes over a tablet's or the backend's -----------------------------------


@pytest.mark.parametrize("who", ["anonymous", "wrong password", "another tablet", "no password"])
def test_nobody_connects_under_a_tablets_client_id(env: Env, peers: list[Peer], who: str) -> None:
    backend = open_peer(env, peers, BACKEND, BACKEND_PASSWORD)
    tablet = open_peer(env, peers, A, PASSWORDS[A])
    assert tablet.subscribe(topic(A, Channel.CMD)) == [1]
    username, password = {
        "anonymous": (None, None),
        "wrong password": (A, "a guess"),
        "another tablet": (B, PASSWORDS[B]),
        "no password": (A, None),
    }[who]
    for _ in range(3):
        intruder = connect(env, username, password, client_id=A)
        assert not intruder.connected, f"{who} connected under {A}'s client id"
    time.sleep(0.3)
    assert not tablet.disconnected.is_set(), f"{who} cut the tablet off"
    backend.publish(topic(A, Channel.CMD), b"still there?")
    assert tablet.next_message().payload == b"still there?", "the tablet was deafened"


def test_a_tablets_account_works_under_its_own_client_id_only(env: Env, peers: list[Peer]) -> None:
    assert env.admin.bound_client_id(A) == A
    assert not connect(env, A, PASSWORDS[A], client_id="liens-backend-single").connected
    assert not connect(env, A, PASSWORDS[A], client_id=B).connected
    assert not connect(env, A, PASSWORDS[A], client_id=f"{A}-2").connected
    open_peer(env, peers, A, PASSWORDS[A])


def test_nobody_connects_under_the_backends_client_id_and_it_keeps_its_session(
    backend: RunningBackend,
) -> None:
    """The real backend on its own broker: intruders under its id neither kick nor deafen it."""
    import requests

    ids = backend.seed()
    code = backend.issue_code(ids["tablet"])
    answer = requests.post(f"{backend.base_url}/api/v1/enrol", json={"code": code}, timeout=10)
    assert answer.status_code == 200, answer.text
    mqtt_info = answer.json()["mqtt"]
    tablet_id, tablet_password = mqtt_info["username"], mqtt_info["password"]
    bridge = backend.backend.bridge
    assert bridge is not None
    admin = backend.backend.broker_admin
    assert admin is not None
    env = Env(mqtt_info["host"], mqtt_info["port"], admin)
    backend_client_id = f"liens-backend-{bridge.replica_id}"
    peers: list[Peer] = []
    connections = bridge.connections
    try:
        for username, password in [
            (None, None),
            (tablet_id, tablet_password),
            (backend.settings.mqtt_username, "a guess"),
        ]:
            intruder = connect(env, username, password, client_id=backend_client_id)
            assert not intruder.connected, f"{username} connected under the backend's id"
        time.sleep(0.5)
        assert bridge.connected
        assert bridge.connections == connections, "the backend was kicked and reconnected"
        # Its persistent session still holds its shared subscriptions: a tablet's event is stored.
        tablet = open_peer(env, peers, tablet_id, tablet_password, client_id=tablet_id)
        event = Envelope(type=MessageType.EVENT, data={"event": "activity", "activity": "photos"})
        tablet.publish(topic(tablet_id, Channel.EVENTS), event.to_bytes())

        def stored() -> bool:
            with backend.db.session() as s:
                return s.get(TabletEvent, event.id) is not None

        poll_until(stored, 5, "the tablet's event stored by the backend")
    finally:
        for peer in peers:
            peer.close()


def test_accounts_of_an_older_liens_are_bound_to_their_client_id(
    env: Env, peers: list[Peer]
) -> None:
    """Before client ids were bound, another account could connect under a tablet's id."""
    env.admin.execute(
        [{"command": "setClientId", "username": A}]  # no clientid: unbound, as before
    )
    assert env.admin.bound_client_id(A) is None
    assert env.admin.bind_client_ids([A, B, "tab-unknown"]) == 1
    assert env.admin.bind_client_ids([A, B]) == 0  # idempotent
    assert env.admin.bound_client_id(A) == A
    assert not connect(env, A, PASSWORDS[A], client_id="someone-else").connected
    open_peer(env, peers, A, PASSWORDS[A])
