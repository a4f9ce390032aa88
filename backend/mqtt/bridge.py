"""The bridge: the backend's MQTT client.

It publishes each tablet's retained configuration and commands, and consumes what tablets send
(status, events, signalling). Every inbound payload is validated by ``kiosk.protocol``; anything
malformed is logged and dropped, and no exception ever escapes a paho callback, so one bad
message cannot stop the bridge.

The backend speaks MQTT 5 to Mosquitto (its own supervised one, or a shared one; docs/scale.md):
a persistent session named after the replica (``liens-backend-{replica_id}``), shared
subscriptions ``$share/liens-backend/...`` so that the replicas split the tablets' events, status
and signalling between them, and the replica's own topics ``liens/v1/backend/{replica_id}/#``
(signals forwarded by another replica) and ``liens/v1/backend/all/#`` (broadcasts between
replicas). One replica is a cluster of one: the same code path.

Events are stored by one path, :func:`backend.mqtt.ingest.store_events`, in batches (whatever
waits in the inbox; a single message is a batch of one).

A QoS 1 message is acknowledged (PUBACK, paho's manual ack) only once it has been
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
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import OperationalError

from backend.db import Database
from backend.models import Tablet, utcnow
from backend.mqtt import ingest
from backend.mqtt.ingest import TabletEventIn
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
        self.connections = 0  # successful CONNECTs since start: 1 unless the broker dropped us
        self.dropped = 0  # malformed messages dropped since start (for health and tests)
        self.stored = 0  # events this replica stored since start
        self.unacked = 0  # messages left unacknowledged (database down): redelivered later
        self.replica_id = replica_id or "single"
        self._events: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._signals: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        # Configurations sent per tablet by this process (see publish_config_batch).
        self._config_lock = threading.Lock()
        self._config_sent: dict[str, int] = {}
        if subscribe:
            # A stable client id: after a crash the replica finds its session, and the messages
            # the broker kept for it, again. Only the backend's account may use it (tablets'
            # accounts are bound to their own client ids, backend/broker/dynsec.py).
            client_id = client_id or f"liens-backend-{self.replica_id}"
        else:
            client_id = client_id or f"liens-publisher-{uuid.uuid4().hex[:12]}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
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
            if self._subscribe:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = SESSION_EXPIRY_S
                props.ReceiveMaximum = RECEIVE_MAXIMUM
                self.client.connect(
                    self.host, self.port, keepalive=30, clean_start=False, properties=props
                )
            else:
                self.client.connect(self.host, self.port, keepalive=30, clean_start=True)
        except OSError as exc:
            raise BrokerUnavailable(f"cannot reach the broker at {self.host}:{self.port}") from exc
        if self._subscribe and not self._workers:
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
            # every reconnection (the broker may have lost the session in a crash).
            for channel in (Channel.STATUS, Channel.EVENTS, Channel.SIGNAL_OUT):
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
        self.connections += 1
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
        # Handled by workers, so that paho's thread stays free for acknowledgements and pings
        # while a backlog (a restart, a broker's queue) goes into the database; the signalling
        # has its own worker so that a call never waits behind events.
        signalling = message.topic.startswith(BACKEND_TOPICS + "/") or message.topic.endswith(
            "/" + Channel.SIGNAL_OUT.value
        )
        (self._signals if signalling else self._events).put(message)

    def _work(self, inbox: queue.Queue[mqtt.MQTTMessage | None]) -> None:
        while (message := inbox.get()) is not None:
            if inbox is not self._events:
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
            events: list[tuple[mqtt.MQTTMessage, TabletEventIn]] = []
            for item in batch:
                event = self._event_of(item)
                if event is not None:
                    events.append((item, event))
                elif not self._is_event_topic(item.topic):
                    self._process(item)  # a status, or a message on a topic we do not consume
                else:
                    self._ack(item)  # a malformed event: dropped (and refused, see _event_of)
            if events:
                self._ingest(events)
            if stop:
                return

    @staticmethod
    def _is_event_topic(topic_name: str) -> bool:
        parsed = protocol.parse_topic(topic_name)
        return parsed is not None and parsed.channel is Channel.EVENTS

    def _event_of(self, message: mqtt.MQTTMessage) -> TabletEventIn | None:
        """The event a message on an ``events`` topic carries; None for anything else.

        A malformed event is dropped and refused for good (the tablet must not send it again).
        """
        parsed = protocol.parse_topic(message.topic)
        if parsed is None or parsed.channel is not Channel.EVENTS:
            return None
        try:
            envelope = protocol.parse_envelope(bytes(message.payload))
        except MalformedMessage as exc:
            self._drop(message.topic, str(exc))
            return None
        try:
            return ingest.event_from_envelope(parsed.tablet_id, envelope)
        except MalformedMessage as exc:
            self._drop(message.topic, str(exc))
            self.confirm_events(parsed.tablet_id, [envelope.id])
            return None

    def _ingest(self, events: list[tuple[mqtt.MQTTMessage, TabletEventIn]]) -> bool:
        """Store a batch in one transaction, then confirm and acknowledge it.

        The database down: nothing is acknowledged (the broker sends it all again). Any other
        failure of the batch: each event is stored on its own, so that one bad event does not
        hold back the others; one that fails alone is logged, acknowledged and dropped.
        """
        if self.database is None:
            for message, _ in events:
                self._ack(message)
            return True
        try:
            with self.database.session() as session:
                result = ingest.store_events(
                    session, [event for _, event in events], received_by=self.replica_id
                )
        except OperationalError:
            self.unacked += len(events)
            log.exception("database error: %d events left unacknowledged", len(events))
            return False
        except Exception:
            if len(events) == 1:
                message, event = events[0]
                log.exception(
                    "event %s on %s could not be stored; dropped", event.id, message.topic
                )
                self.dropped += 1
                self._ack(message)
                return False
            log.exception("batch of %d events failed; one by one", len(events))
            for one in events:
                self._ingest([one])
            return False
        self.stored += len(result.stored)
        for event in result.unknown:
            self._drop(f"tablets/{event.tablet_id}/events", "unknown tablet")
        by_tablet: dict[str, list[str]] = {}
        for event in result.stored + result.duplicates:
            by_tablet.setdefault(event.tablet_id, []).append(event.id)
        for tablet_id, ids in by_tablet.items():
            self.confirm_events(tablet_id, ids)
        for message, _ in events:
            self._ack(message)
        return True

    def _ack(self, message: mqtt.MQTTMessage) -> None:
        if message.qos > 0 and self._subscribe:
            self.client.ack(message.mid, message.qos)

    def _process(self, message: mqtt.MQTTMessage) -> None:
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
        if ack:
            self._ack(message)

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
                    event = ingest.event_from_envelope(parsed.tablet_id, envelope)
                except MalformedMessage:
                    # Refused for good: the tablet must not send it again and again.
                    self.confirm_events(parsed.tablet_id, [envelope.id])
                    raise
                return self._store_one(event)
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
        # The other replicas' calls and pages learn it too (the status came to this one).
        self.to_replica(BROADCAST, f"status/{tablet_id}", {"online": online})

    def _store_one(self, event: TabletEventIn) -> bool:
        """A single event (a message injected by a test, a redelivery): a batch of one."""
        if self.database is None:
            return True
        with self.database.session() as session:
            result = ingest.store_events(session, [event], received_by=self.replica_id)
        self.stored += len(result.stored)
        if result.unknown:
            raise MalformedMessage(f"event from unknown tablet {event.tablet_id}")
        self.confirm_events(event.tablet_id, [event.id])
        return True
