"""The tablet's MQTT link: its own credentials, a last will, resubscription, the outbox drain.

paho runs its network loop in its own thread; every callback here only parses, stores and hands
plain dicts to the core's listener. Nothing here raises into paho.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from kiosk import protocol
from kiosk.protocol import Channel, Envelope, MalformedMessage, MessageType
from kiosk.settings import Credentials
from kiosk.store import OutboxItem, Store

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]

# The backend's confirmation that events are stored: the outbox may let them go.
EVENTS_STORED = "events_stored"
# An event the broker took but the backend has not confirmed is published again after this.
REDELIVER_S = 30.0


class Link:
    """One tablet's connection to the broker."""

    def __init__(
        self,
        credentials: Credentials,
        store: Store,
        *,
        app_version: str,
        listener: Listener,
        redeliver_s: float = REDELIVER_S,
    ) -> None:
        self.redeliver_s = redeliver_s
        self._sent_at: dict[str, float] = {}  # outbox id -> when it was last published
        self._stopping = threading.Event()
        self.credentials = credentials
        self.tablet_id = credentials.tablet_id
        self.store = store
        self.app_version = app_version
        self.listener = listener
        self._connected = threading.Event()
        # paho message id -> outbox id (None for publishes that are not outbox items). paho calls
        # on_publish with its own mutex held, so this lock is never held while calling paho;
        # an acknowledgement that overtakes the registration waits in ``_early_acks``.
        self._inflight: dict[int, str | None] = {}
        self._early_acks: set[int] = set()
        self._inflight_lock = threading.Lock()
        self.dropped = 0
        self.session = uuid.uuid4().hex[:12]  # this run's status and last will share it
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self.tablet_id}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        m = credentials.mqtt
        self.client.username_pw_set(m.username, m.password)
        if m.tls:
            self.client.tls_set()
        self.client.will_set(
            protocol.topic(self.tablet_id, Channel.STATUS),
            protocol.status_payload(False, app_version=app_version, session=self.session),
            qos=protocol.QOS,
            retain=True,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; paho retries on its own until :meth:`stop`."""
        m = self.credentials.mqtt
        self.client.connect_async(m.host, m.port, keepalive=30)
        self.client.loop_start()
        threading.Thread(target=self._redeliver_loop, name="outbox-redeliver", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._connected.is_set():
            # A clean goodbye: the last will only fires on an unexpected loss.
            info = self._publish(
                protocol.topic(self.tablet_id, Channel.STATUS),
                protocol.status_payload(False, app_version=self.app_version, session=self.session),
                retain=True,
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- paho callbacks ------------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused tablet %s: %s", self.tablet_id, reason_code)
            self._emit({"event": "disconnected", "reason": f"refused: {reason_code}"})
            return
        # Subscribe on every connection: the session is clean, so subscriptions do not survive.
        for channel in (Channel.CONFIG, Channel.CMD, Channel.SIGNAL_IN):
            client.subscribe(protocol.topic(self.tablet_id, channel), qos=protocol.QOS)
        self._publish(
            protocol.topic(self.tablet_id, Channel.STATUS),
            protocol.status_payload(True, app_version=self.app_version, session=self.session),
            retain=True,
        )
        self._connected.set()
        self._emit({"event": "connected"})
        self.flush_outbox()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        with self._inflight_lock:
            # Unacknowledged items stay in the outbox and are sent again after reconnecting.
            self._inflight.clear()
            self._early_acks.clear()
        if was:
            self._emit({"event": "disconnected", "reason": str(reason_code)})

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        with self._inflight_lock:
            if mid not in self._inflight:
                self._early_acks.add(mid)
                return
            self._inflight.pop(mid)
        # The broker has it, but a broker can lose what it acknowledged (a crash before its
        # disk write, a shared subscription not restored): the event leaves the outbox only
        # when the backend says it is stored ("events_stored" on cmd), and until then it is
        # sent again after every reconnection. The backend stores each id once.

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._handle(message.topic, bytes(message.payload))
        except MalformedMessage as exc:
            self.dropped += 1
            log.warning("dropped a message on %s: %s", message.topic, exc)
        except Exception:
            log.exception("unexpected error handling a message on %s", message.topic)

    def _handle(self, topic_name: str, payload: bytes) -> None:
        parsed = protocol.parse_topic(topic_name)
        if parsed is None or parsed.tablet_id != self.tablet_id:
            raise MalformedMessage("not one of this tablet's topics")
        if parsed.channel is Channel.CONFIG:
            if not payload:
                # The backend cleared the retained configuration: this tablet was retired.
                self.store.clear_config()
                self._emit({"event": "retired"})
                return
            envelope = protocol.parse_envelope(payload)
            if envelope.type != MessageType.CONFIG:
                raise MalformedMessage(f"expected a config, got {envelope.type!r}")
            data = validate_config(envelope.data)
            self.store.save_config(data)
            self._emit({"event": "config", "revision": data["revision"], "config": data})
        elif parsed.channel is Channel.CMD:
            envelope = protocol.parse_envelope(payload)
            if envelope.type != MessageType.COMMAND:
                raise MalformedMessage(f"expected a command, got {envelope.type!r}")
            if envelope.data.get("command") == EVENTS_STORED:
                ids = envelope.data.get("ids")
                if not isinstance(ids, list):
                    raise MalformedMessage("events_stored without a list of ids")
                for item_id in ids:
                    if isinstance(item_id, str):
                        self.store.acknowledge(item_id)
                        self._sent_at.pop(item_id, None)
                return
            self._emit(
                {"event": "command", "command": envelope.data.get("command"), "data": envelope.data}
            )
        elif parsed.channel is Channel.SIGNAL_IN:
            envelope = protocol.parse_envelope(payload)
            if envelope.type != MessageType.SIGNAL:
                raise MalformedMessage(f"expected a signal, got {envelope.type!r}")
            self._emit({"event": "signal", "data": envelope.data})
        else:
            raise MalformedMessage(f"unexpected channel {parsed.channel}")

    def _emit(self, event: dict[str, Any]) -> None:
        try:
            self.listener(event)
        except Exception:
            log.exception("kiosk listener failed on %s", event.get("event"))

    # -- signalling ---------------------------------------------------------------------------

    def send_signal(self, data: dict[str, Any]) -> None:
        """Publish one call signal on ``signal/out`` (QoS 1), never through the outbox.

        Signalling is ephemeral: a signal that cannot leave now is dropped (and logged), not
        replayed after a reconnection, when the call it belongs to is long over.
        """
        if not self._connected.is_set():
            log.warning(
                "offline: signal %s of call %s dropped", data.get("kind"), data.get("call_id")
            )
            return
        envelope = Envelope(type=MessageType.SIGNAL, data=data)
        self._publish(
            protocol.topic(self.tablet_id, Channel.SIGNAL_OUT), envelope.to_bytes(), retain=False
        )

    # -- outbox --------------------------------------------------------------------------------

    def send_event(self, event_type: str, data: dict[str, Any]) -> str:
        """Store an event in the outbox, then publish it if connected; returns its id."""
        item = event_item(self.tablet_id, event_type, data)
        self.store.enqueue(item)
        if self._connected.is_set():
            self._publish_item(item)
        return item.id

    def flush_outbox(self) -> None:
        with self._inflight_lock:
            inflight = set(self._inflight.values())
        for item in self.store.pending():
            if item.id not in inflight:
                self._publish_item(item)

    def _publish_item(self, item: OutboxItem) -> None:
        self._sent_at[item.id] = time.monotonic()
        self._publish(item.topic, item.payload, retain=False, item_id=item.id)

    def _redeliver_loop(self) -> None:
        """Publish again what waited too long for the backend's confirmation.

        Covers a broker that acknowledged and then lost an event without this tablet ever
        reconnecting (e.g. the backend's subscription was missing for a moment).
        """
        while not self._stopping.wait(max(0.2, self.redeliver_s / 4)):
            if not self._connected.is_set():
                continue
            now = time.monotonic()
            with self._inflight_lock:
                inflight = set(self._inflight.values())
            for item in self.store.pending():
                if item.id in inflight:
                    continue
                if now - self._sent_at.get(item.id, 0.0) >= self.redeliver_s:
                    self._publish_item(item)

    def _publish(
        self, topic_name: str, payload: bytes, *, retain: bool, item_id: str | None = None
    ) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic_name, payload, qos=protocol.QOS, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return info
        with self._inflight_lock:
            # A PUBACK may overtake this registration (paho's own thread): then it is done.
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
            else:
                self._inflight[info.mid] = item_id
        return info


def event_item(tablet_id: str, event_type: str, data: dict[str, Any]) -> OutboxItem:
    """An outbox item for one usage or call event; its envelope id is the deduplication key."""
    envelope = Envelope(type=MessageType.EVENT, data={**data, "event": event_type})
    return OutboxItem(
        id=envelope.id,
        topic=protocol.topic(tablet_id, Channel.EVENTS),
        payload=envelope.to_bytes(),
    )


def validate_config(data: dict[str, Any]) -> dict[str, Any]:
    """Check the shape the screens rely on; raise :class:`MalformedMessage` otherwise."""
    revision = data.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise MalformedMessage("config without an integer revision")
    residents = data.get("residents")
    if not isinstance(residents, list):
        raise MalformedMessage("config without a residents list")
    for resident in residents:
        if not isinstance(resident, dict) or not isinstance(resident.get("id"), str):
            raise MalformedMessage("config with an invalid resident")
        contacts = resident.get("contacts", [])
        if not isinstance(contacts, list):
            raise MalformedMessage("config with an invalid contact list")
        for contact in contacts:
            if not isinstance(contact, dict) or not all(
                isinstance(contact.get(k), str) for k in ("id", "approval_id", "display_name")
            ):
                raise MalformedMessage("config with an invalid contact")
    return data
