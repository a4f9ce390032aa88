"""The bridge: the backend's MQTT client.

It publishes each tablet's retained configuration and commands, and consumes what tablets send
(status, events, signalling). Every inbound payload is validated by ``kiosk.protocol``; anything
malformed is logged and dropped, and no exception ever escapes a paho callback, so one bad
message cannot stop the bridge.

Two modes (docs/scale.md):

- the embedded broker (amqtt, MQTT 3.1.1): one replica, plain subscriptions, clean session;
- Mosquitto / EMQX (``mqtt5=True``): MQTT 5 with a persistent session named after the replica
  (``liens-backend-{replica_id}``), shared subscriptions ``$share/liens-backend/...`` so that the
  replicas split the tablets' events, status and signalling between them, and the replica's own
  topics ``liens/v1/backend/{replica_id}/#`` (signals forwarded by another replica) and
  ``liens/v1/backend/all/#`` (broadcasts between replicas).

In both modes a QoS 1 message is acknowledged (PUBACK, paho's manual ack) only once it has been
handled, i.e. after the database commit: a backend killed before the commit gets the message again
from its session when it comes back, and the event id makes the second insert a no-op.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import Tablet, TabletEvent, utcnow
from kiosk import protocol
from kiosk.protocol import Channel, Envelope, MalformedMessage, MessageType

log = logging.getLogger(__name__)

SignalHandler = Callable[[str, Envelope], None]
StatusHandler = Callable[[str, bool], None]
# Returns True when the signal was forwarded to the replica that holds its call.
SignalRouter = Callable[[str, Envelope], bool]
# A message between replicas: (what, JSON body).
ReplicaHandler = Callable[[str, dict[str, Any]], None]

SHARED_GROUP = "liens-backend"
BACKEND_TOPICS = f"{protocol.PREFIX}/backend"
BROADCAST = "all"
SESSION_EXPIRY_S = 24 * 3600
RECEIVE_MAXIMUM = 1000
BATCH_MAX = 500  # events stored in one transaction at most


def replica_topic(replica_id: str, *levels: str) -> str:
    """``liens/v1/backend/{replica_id}/...``: topics only backend replicas use."""
    return "/".join((BACKEND_TOPICS, replica_id, *levels))


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached or did not acknowledge in time."""


@dataclass
class ConfigBatch:
    """What :meth:`Bridge.publish_config_batch` did with each tablet of a batch."""

    published: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # a newer configuration went out meanwhile
    failed: list[str] = field(default_factory=list)  # not acknowledged: to retry
    error: str = ""


class Bridge:
    """One paho client, connected as the backend user, reconnecting on its own."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        database: Database | None = None,
        subscribe: bool = True,
        client_id: str | None = None,
        mqtt5: bool = False,
        replica_id: str = "",
    ) -> None:
        self.host, self.port = host, port
        self.database = database
        self._subscribe = subscribe
        self._connected = threading.Event()
        self.signal_handlers: list[SignalHandler] = []
        self.status_handlers: list[StatusHandler] = []
        self.replica_handlers: list[ReplicaHandler] = []
        self.signal_router: SignalRouter | None = None
        # Called (from paho's thread: it must not block) when the connection comes back after a
        # loss: changes published meanwhile failed, the backend republishes.
        self.on_reconnected: Callable[[], None] | None = None
        self._was_connected = False
        self.dropped = 0  # malformed messages dropped since start (for health and tests)
        self.stored = 0  # events this replica stored since start
        self.unacked = 0  # messages left unacknowledged (database down): redelivered later
        self.mqtt5 = mqtt5
        self.replica_id = replica_id or "single"
        self._events: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._signals: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        # Configurations sent per tablet by this process (see publish_config_batch).
        self._config_lock = threading.Lock()
        self._config_sent: dict[str, int] = {}
        if mqtt5 and subscribe:
            # A stable client id: after a crash the replica finds its session, and the messages
            # the broker kept for it, again.
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id or f"liens-backend-{self.replica_id}",
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id or f"liens-backend-{uuid.uuid4().hex[:8]}",
                protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
                clean_session=None if mqtt5 else True,
                manual_ack=subscribe,
            )
        self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        if subscribe:
            # A publish-only bridge (the CLI) ignores whatever a broker might echo back to it.
            self.client.on_message = self._on_message

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Connect and start the network thread; raise :class:`BrokerUnavailable` on failure."""
        try:
            if self.mqtt5 and self._subscribe:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                props.ReceiveMaximum = RECEIVE_MAXIMUM
                self.client.connect(
                    self.host, self.port, keepalive=30, clean_start=False, properties=props
                )
            else:
                self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise BrokerUnavailable(f"cannot reach the broker at {self.host}:{self.port}") from exc
        if self.mqtt5 and self._subscribe and not self._workers:
            for name, inbox in (("events", self._events), ("signals", self._signals)):
                worker = threading.Thread(
                    target=self._work, args=(inbox,), name=f"liens-bridge-{name}", daemon=True
                )
                worker.start()
                self._workers.append(worker)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise BrokerUnavailable(f"the broker at {self.host}:{self.port} refused the backend")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        for inbox in (self._events, self._signals):
            inbox.put(None)
        for worker in self._workers:
            worker.join(10)
        self._workers = []

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the backend: %s", reason_code)
            return
        log.info("backend connected to the broker at %s:%s", self.host, self.port)
        if self._subscribe:
            # Subscriptions are made here, not once at start, so that they come back after
            # every reconnection (the session is clean, or the broker lost it in a crash).
            channels = (Channel.STATUS, Channel.EVENTS, Channel.SIGNAL_OUT)
            if self.mqtt5:
                for channel in channels:
                    shared = f"$share/{SHARED_GROUP}/{protocol.subscription(channel)}"
                    client.subscribe(shared, options=SubscribeOptions(qos=protocol.QOS))
                client.subscribe(
                    replica_topic(self.replica_id, "#"),
                    options=SubscribeOptions(qos=protocol.QOS),
                )
                client.subscribe(
                    replica_topic(BROADCAST, "#"),
                    options=SubscribeOptions(qos=protocol.QOS, noLocal=True),
                )
            else:
                for channel in channels:
                    client.subscribe(protocol.subscription(channel), qos=protocol.QOS)
        self._connected.set()
        if self._was_connected and self.on_reconnected is not None:
            try:
                self.on_reconnected()
            except Exception:  # a callback never takes paho's network thread down
                log.exception("reconnection callback failed")
        self._was_connected = True

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self._connected.clear()
        if reason_code.is_failure:
            log.warning("backend lost the broker (%s); paho reconnects", reason_code)

    # -- publishing ----------------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 5.0
    ) -> None:
        """Publish with QoS 1 and wait for the broker's acknowledgement."""
        info = self.client.publish(topic, payload, qos=protocol.QOS, retain=retain)
        self._wait(info, topic, timeout)

    @staticmethod
    def _wait(info: mqtt.MQTTMessageInfo, topic: str, timeout: float) -> None:
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise BrokerUnavailable(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise BrokerUnavailable(f"the broker did not acknowledge {topic} in {timeout} s")

    def _send_config(self, tablet_id: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        """Hand a tablet's retained configuration to paho; the caller holds ``_config_lock``.

        Every configuration (or clearing) this process sends goes through here, in order, and
        counts in ``_config_sent``: the start's republish (``publish_config_batch``) never sends
        a configuration built before a newer one went out for the same tablet.
        """
        self._config_sent[tablet_id] = self._config_sent.get(tablet_id, 0) + 1
        return self.client.publish(
            protocol.topic(tablet_id, Channel.CONFIG), payload, qos=protocol.QOS, retain=True
        )

    def publish_config(self, tablet_id: str, data: dict[str, Any]) -> None:
        payload = Envelope(type=MessageType.CONFIG, data=data).to_bytes()
        with self._config_lock:
            info = self._send_config(tablet_id, payload)
        self._wait(info, protocol.topic(tablet_id, Channel.CONFIG), 5.0)

    def clear_config(self, tablet_id: str) -> None:
        """Delete the retained configuration (an empty retained payload), e.g. on retirement."""
        with self._config_lock:
            info = self._send_config(tablet_id, b"")
        self._wait(info, protocol.topic(tablet_id, Channel.CONFIG), 5.0)

    def config_marks(self, tablet_ids: list[str]) -> dict[str, int]:
        """How many configurations of each tablet this process has sent so far.

        Taken before building configurations: :meth:`publish_config_batch` skips a tablet whose
        count moved since (a newer configuration went out meanwhile).
        """
        with self._config_lock:
            return {tablet_id: self._config_sent.get(tablet_id, 0) for tablet_id in tablet_ids}

    def publish_config_batch(
        self,
        configs: dict[str, dict[str, Any]],
        marks: dict[str, int],
        *,
        timeout: float = 30.0,
    ) -> ConfigBatch:
        """Publish many retained configurations without waiting for each acknowledgement.

        Every message is handed to paho first (paho keeps up to 20 in flight and sends the rest
        as acknowledgements come back), then the acknowledgements are awaited, ``timeout`` for
        the whole batch. A tablet whose configuration was sent by someone else in this process
        since ``marks`` was taken is skipped: what went out is newer. A message that is not
        acknowledged is reported in ``failed`` (for a later retry), never raised.
        """
        result = ConfigBatch()
        sent: list[tuple[str, mqtt.MQTTMessageInfo]] = []
        payloads = {
            tablet_id: Envelope(type=MessageType.CONFIG, data=data).to_bytes()
            for tablet_id, data in configs.items()
        }
        with self._config_lock:
            for tablet_id, payload in payloads.items():
                if self._config_sent.get(tablet_id, 0) != marks.get(tablet_id, 0):
                    result.skipped.append(tablet_id)
                    continue
                sent.append((tablet_id, self._send_config(tablet_id, payload)))
        deadline = time.monotonic() + timeout
        for tablet_id, info in sent:
            try:
                self._wait(
                    info,
                    protocol.topic(tablet_id, Channel.CONFIG),
                    max(0.0, deadline - time.monotonic()),
                )
            except BrokerUnavailable as exc:
                result.failed.append(tablet_id)
                result.error = str(exc)
            else:
                result.published.append(tablet_id)
        return result

    def send_command(self, tablet_id: str, command: str, **data: Any) -> None:
        envelope = Envelope(type=MessageType.COMMAND, data={"command": command, **data})
        self.publish(protocol.topic(tablet_id, Channel.CMD), envelope.to_bytes())

    def confirm_events(self, tablet_id: str, ids: list[str]) -> None:
        """Tell a tablet these events are stored (or refused for good): its outbox drops them.

        Sent without waiting: a lost confirmation only means the tablet sends the events again
        after its next reconnection, and the backend stores each id once.
        """
        if not self._subscribe or not ids:
            return
        envelope = Envelope(
            type=MessageType.COMMAND, data={"command": "events_stored", "ids": ids[:1000]}
        )
        self.client.publish(
            protocol.topic(tablet_id, Channel.CMD), envelope.to_bytes(), qos=protocol.QOS
        )
        if len(ids) > 1000:
            self.confirm_events(tablet_id, ids[1000:])

    def to_replica(self, replica_id: str, what: str, body: dict[str, Any]) -> None:
        """Send ``body`` to another replica (or :data:`BROADCAST`), without waiting.

        Safe on paho's thread (it only queues the message); used for forwarded signals.
        """
        payload = json.dumps({"from": self.replica_id, **body}).encode()
        self.client.publish(replica_topic(replica_id, what), payload, qos=protocol.QOS)

    # -- consuming -----------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.mqtt5:
            # Handled by workers, so that paho's thread stays free for acknowledgements and
            # pings while a backlog (a restart, a broker's queue) goes into the database; the
            # signalling has its own worker so that a call never waits behind events.
            signalling = message.topic.startswith(BACKEND_TOPICS + "/") or message.topic.endswith(
                "/" + Channel.SIGNAL_OUT.value
            )
            (self._signals if signalling else self._events).put(message)
            return
        self._process(message)

    def _work(self, inbox: queue.Queue[mqtt.MQTTMessage | None]) -> None:
        batching = inbox is self._events and self.database is not None
        while (message := inbox.get()) is not None:
            if not batching:
                self._process(message)
                continue
            # Whatever else is waiting goes into the database in one transaction.
            batch = [message]
            stop = False
            while len(batch) < BATCH_MAX:
                try:
                    more = inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._process_batch(batch)
            if stop:
                return

    def _process_batch(self, batch: list[mqtt.MQTTMessage]) -> None:
        """Store plain events in one transaction (each id once), the rest one by one.

        Acknowledged after the commit, like single messages; if the batch fails for any other
        reason than the database being down, each message is handled on its own.
        """
        rows: list[dict[str, Any]] = []
        taken: list[mqtt.MQTTMessage] = []
        for message in batch:
            parsed = protocol.parse_topic(message.topic)
            envelope = None
            if parsed is not None and parsed.channel is Channel.EVENTS:
                try:
                    envelope = protocol.parse_envelope(bytes(message.payload))
                except MalformedMessage:
                    envelope = None
            event = envelope.data.get("event") if envelope is not None else None
            if (
                parsed is None
                or envelope is None
                or envelope.type != MessageType.EVENT
                or not isinstance(event, str)
                or not event
                or event == CONTACT_REQUEST_EVENT
            ):
                self._process(message)
                continue
            rows.append(
                {
                    "id": envelope.id,
                    "tablet_id": parsed.tablet_id,
                    "type": event[:50],
                    "ts": envelope.ts,
                    "data": envelope.data,
                    "received_by": self.replica_id[:64],
                    "received_at": utcnow(),
                }
            )
            taken.append(message)
        if not rows:
            return
        try:
            stored = self._store_events(rows)
        except OperationalError:
            self.unacked += len(taken)
            log.exception("database error: %d events left unacknowledged", len(taken))
            return
        except Exception:
            log.exception("batch of %d events failed; one by one", len(taken))
            for message in taken:
                self._process(message)
            return
        self.stored += stored
        by_tablet: dict[str, list[str]] = {}
        for row in rows:
            by_tablet.setdefault(row["tablet_id"], []).append(row["id"])
        for tablet_id, ids in by_tablet.items():
            self.confirm_events(tablet_id, ids)
        for message in taken:
            if message.qos > 0:
                self.client.ack(message.mid, message.qos)

    def _store_events(self, rows: list[dict[str, Any]]) -> int:
        assert self.database is not None
        with self.database.session() as session:
            tablet_ids = {row["tablet_id"] for row in rows}
            known = set(session.scalars(select(Tablet.id).where(Tablet.id.in_(tablet_ids))))
            for row in rows:
                if row["tablet_id"] not in known:
                    self._drop(f"tablets/{row['tablet_id']}/events", "unknown tablet")
            rows = [row for row in rows if row["tablet_id"] in known]
            if not rows:
                return 0
            dialect = session.get_bind().dialect.name
            statement: Any
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                statement = pg_insert(TabletEvent).on_conflict_do_nothing(index_elements=["id"])
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                statement = sqlite_insert(TabletEvent).on_conflict_do_nothing(index_elements=["id"])
            result = session.execute(statement, rows)
            session.execute(update(Tablet).where(Tablet.id.in_(known)).values(last_seen=utcnow()))
            apply_heartbeats(
                session,
                [
                    (row["tablet_id"], row["ts"], row["data"])
                    for row in rows
                    if row["type"] == HEARTBEAT_EVENT
                ],
            )
            return max(0, int(getattr(result, "rowcount", 0) or 0))

    def _process(self, message: mqtt.MQTTMessage) -> None:
        client = self.client
        ack = True
        try:
            if message.topic.startswith(BACKEND_TOPICS + "/"):
                self._on_replica_message(message.topic, bytes(message.payload))
            else:
                self.handle(message.topic, bytes(message.payload))
        except OperationalError:
            # The database is unreachable: no PUBACK, so the broker keeps the message in this
            # replica's session and sends it again after the next reconnection.
            ack = False
            self.unacked += 1
            log.exception("database error on %s: message left unacknowledged", message.topic)
        except Exception:
            # Last line of defence: a bug in one handler must not kill paho's network thread.
            log.exception("unexpected error handling a message on %s", message.topic)
        if ack and message.qos > 0 and self._subscribe:
            client.ack(message.mid, message.qos)

    def _on_replica_message(self, topic_name: str, payload: bytes) -> None:
        """A message from another replica: a forwarded tablet signal, or a broadcast."""
        levels = topic_name[len(BACKEND_TOPICS) + 1 :].split("/")
        if len(levels) < 2 or levels[0] not in (self.replica_id, BROADCAST):
            self._drop(topic_name, "not a topic of this replica")
            return
        try:
            body = json.loads(payload)
        except ValueError:
            self._drop(topic_name, "not JSON")
            return
        if not isinstance(body, dict) or body.get("from") == self.replica_id:
            return
        what = levels[1]
        if what == "signal" and len(levels) == 3:
            # Forwarded by the replica that received it from the tablet: this one holds the call.
            try:
                envelope = protocol.parse_envelope(str(body.get("envelope", "")).encode())
            except MalformedMessage as exc:
                self._drop(topic_name, str(exc))
                return
            log.debug("signal of %s forwarded by %s", levels[2], body.get("from"))
            for handler in self.signal_handlers:
                handler(levels[2], envelope)
        elif what == "status" and len(levels) == 3:
            for status_handler in self.status_handlers:
                status_handler(levels[2], bool(body.get("online")))
        else:
            for replica_handler in self.replica_handlers:
                replica_handler(what, body)

    def handle(self, topic_name: str, payload: bytes) -> bool:
        """Validate and dispatch one inbound message; False when it was dropped."""
        parsed = protocol.parse_topic(topic_name)
        if parsed is None or parsed.channel not in (
            Channel.STATUS,
            Channel.EVENTS,
            Channel.SIGNAL_OUT,
        ):
            return self._drop(topic_name, "not a topic the backend consumes")
        if not payload and parsed.channel is Channel.STATUS:
            return True  # a cleared retained status: nothing to record
        try:
            envelope = protocol.parse_envelope(payload)
            if parsed.channel is Channel.STATUS:
                self._on_status(parsed.tablet_id, envelope)
            elif parsed.channel is Channel.EVENTS:
                try:
                    self._on_event(parsed.tablet_id, envelope)
                except MalformedMessage:
                    # Refused for good: the tablet must not send it again and again.
                    self.confirm_events(parsed.tablet_id, [envelope.id])
                    raise
                self.confirm_events(parsed.tablet_id, [envelope.id])
            else:
                if envelope.type != MessageType.SIGNAL:
                    raise MalformedMessage(f"expected a signal, got {envelope.type!r}")
                if self.signal_router is not None and self.signal_router(
                    parsed.tablet_id, envelope
                ):
                    return True  # forwarded to the replica that holds the call
                for handler in self.signal_handlers:
                    handler(parsed.tablet_id, envelope)
        except MalformedMessage as exc:
            return self._drop(topic_name, str(exc))
        return True

    def _drop(self, topic_name: str, why: str) -> bool:
        self.dropped += 1
        log.warning("dropped a message on %s: %s", topic_name, why)
        return False

    def _on_status(self, tablet_id: str, envelope: Envelope) -> None:
        online = protocol.parse_status(envelope)
        if self.database is None:
            return
        with self.database.session() as session:
            tablet = session.get(Tablet, tablet_id)
            if tablet is None:
                raise MalformedMessage(f"status from unknown tablet {tablet_id}")
            run = envelope.data.get("session")
            run = run[:32] if isinstance(run, str) else ""
            if online:
                tablet.status_session = run
            elif run and tablet.status_session and run != tablet.status_session:
                # The last will of an earlier run, arriving after the current run's "online".
                log.info("stale offline status of %s (run %s) ignored", tablet_id, run)
                return
            tablet.online = online
            tablet.last_seen = utcnow()
            version = envelope.data.get("app_version")
            if isinstance(version, str):
                tablet.app_version = version[:50]
        for handler in self.status_handlers:
            handler(tablet_id, online)
        if self.mqtt5:
            # The other replicas' calls and pages learn it too (the status came to this one).
            self.to_replica(BROADCAST, f"status/{tablet_id}", {"online": online})

    def _on_event(self, tablet_id: str, envelope: Envelope) -> None:
        if envelope.type != MessageType.EVENT:
            raise MalformedMessage(f"expected an event, got {envelope.type!r}")
        event_type = envelope.data.get("event")
        if not isinstance(event_type, str) or not event_type:
            raise MalformedMessage("event without an 'event' name")
        if self.database is None:
            return
        try:
            with self.database.session() as session:
                if session.get(Tablet, tablet_id) is None:
                    raise MalformedMessage(f"event from unknown tablet {tablet_id}")
                if session.get(TabletEvent, envelope.id) is not None:
                    log.debug("duplicate event %s ignored", envelope.id)
                    return
                session.add(
                    TabletEvent(
                        id=envelope.id,
                        tablet_id=tablet_id,
                        type=event_type[:50],
                        ts=envelope.ts,
                        data=envelope.data,
                        received_by=self.replica_id[:64],
                    )
                )
                tablet = session.get(Tablet, tablet_id)
                if tablet is not None:
                    tablet.last_seen = utcnow()
                if event_type == CONTACT_REQUEST_EVENT:
                    _queue_contact_request(session, tablet_id, envelope)
                elif event_type == HEARTBEAT_EVENT:
                    apply_heartbeat(session, tablet_id, envelope.ts, envelope.data)
                elif event_type == PHOTO_HEART_EVENT:
                    # A resident's heart on a family photo (backend/photos, docs/photos.md).
                    from backend.photos.service import record_heart

                    record_heart(
                        session, tablet_id=tablet_id, event_id=envelope.id, data=envelope.data
                    )
            self.stored += 1
        except IntegrityError:
            # Another replica (or a redelivery racing this one) stored the same id first.
            log.debug("duplicate event %s ignored (race)", envelope.id)


# -- contact requests ("Demander un contact" on a child's tablet, issue 4) -------------------------

CONTACT_REQUEST_EVENT = "contact_request"
PHOTO_HEART_EVENT = "photo_heart"
HEARTBEAT_EVENT = "heartbeat"


# -- heartbeats (kiosk/heartbeat.py): battery, storage, version for the fleet page -------------


def apply_heartbeat(session: Session, tablet_id: str, ts: str, data: dict[str, Any]) -> None:
    """Copy a heartbeat's readings onto the tablet, unless a newer heartbeat is already there.

    Idempotent and order-proof: a redelivered or late heartbeat (from the outbox after a night
    offline) never overwrites fresher readings. A reading the tablet could not make is None.
    """
    apply_heartbeats(session, [(tablet_id, ts, data)])


def apply_heartbeats(session: Session, beats: list[tuple[str, str, dict[str, Any]]]) -> None:
    """:func:`apply_heartbeat` for a batch of ``(tablet_id, ts, data)``, in one statement.

    Only each tablet's newest heartbeat of the batch is written (the first of equal times, as
    one by one would keep it): the older ones could not overwrite it anyway. The rows go to the
    database as one executemany (pipelined by psycopg), not one round trip per heartbeat: a
    fleet coming back online sends mostly heartbeats.
    """
    newest: dict[str, dict[str, Any]] = {}
    for tablet_id, ts, data in beats:
        values = _heartbeat_values(ts, data)
        kept = newest.get(tablet_id)
        if kept is None or kept["b_at"] < values["b_at"]:
            newest[tablet_id] = {"b_id": tablet_id, **values}
    if not newest:
        return
    table = cast(Table, Tablet.__table__)
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            or_(table.c.heartbeat_at.is_(None), table.c.heartbeat_at < bindparam("b_at")),
        )
        .values(
            battery_percent=bindparam("b_battery"),
            charging=bindparam("b_charging"),
            free_storage_mb=bindparam("b_storage"),
            heartbeat_at=bindparam("b_at"),
            # A heartbeat without a version keeps the one the tablet had.
            app_version=func.coalesce(bindparam("b_version"), table.c.app_version),
        )
    )
    session.execute(statement, list(newest.values()))


def _heartbeat_values(ts: str, data: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        moment = now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = min(moment.astimezone(UTC), now)  # a tablet clock ahead must not block later beats

    def number(key: str, low: int, high: int) -> int | None:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(max(low, min(high, value)))

    charging = data.get("charging")
    version = data.get("app_version")
    return {
        "b_battery": number("battery_percent", 0, 100),
        "b_charging": charging if isinstance(charging, bool) else None,
        "b_storage": number("free_storage_mb", 0, 2**31 - 1),
        "b_at": moment,
        "b_version": version[:50] if isinstance(version, str) and version else None,
    }


def _queue_contact_request(session: Session, tablet_id: str, envelope: Envelope) -> None:
    """Put a child's request in the staff queue, in the same transaction as its event.

    Stored once per event id, like the event. A request the tablet may not make (a resident it
    does not serve) is logged and dropped; the event itself is kept.
    """
    from backend.services import requests as request_service

    data = envelope.data
    resident_id, who, relation = data.get("resident_id"), data.get("who"), data.get("relation")
    if not isinstance(resident_id, str) or not isinstance(relation, str):
        log.warning("contact_request %s without resident_id or relation; dropped", envelope.id)
        return
    request_service.create_from_tablet(
        session=session,
        tablet_id=tablet_id,
        event_id=envelope.id,
        resident_id=resident_id,
        who=who if isinstance(who, str) else "",
        relation=relation,
    )
