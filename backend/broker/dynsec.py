"""Mosquitto 2 dynamic security, driven by the backend over MQTT.

The backend owns Mosquitto's clients and roles (its own supervised broker, or a shared one): when a
tablet is enrolled it gets a dynsec client (user name = tablet id, bound to client id = tablet
id) and a role ``tablet-{tid}`` whose ACLs are exactly
:func:`kiosk.protocol.tablet_may`; when it is removed both are deleted, which also disconnects it.

Commands are JSON objects published to ``$CONTROL/dynamic-security/v1``; Mosquitto answers on
``$CONTROL/dynamic-security/v1/response`` with the same ``correlationData``
(https://mosquitto.org/documentation/dynamic-security/). :class:`DynsecAdmin` owns its own paho
client, connected as the dynsec administrator created by ``mosquitto_ctrl dynsec init``.

Facts about Mosquitto 2.0.11's plugin that shape this module:

- ``dynsec init`` sets ``defaultACLAccess`` to: publishClientSend **deny**, subscribe **deny**,
  publishClientReceive **allow**, unsubscribe **allow**. Each tablet role therefore also carries an
  explicit low-priority ``publishClientReceive #`` deny, so that "everything else is denied" does
  not depend on those defaults.
- The admin role that ``init`` creates may subscribe to and receive ``#``, but may publish only to
  ``$CONTROL/dynamic-security/#``: the backend user needs :meth:`DynsecAdmin.ensure_backend_role`
  (role ``liens-backend``: publish, receive, subscribe and unsubscribe ``liens/v1/#``).
- ``deleteClient`` kicks the client's live connection; so do changes to a client's roles.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.protocol import (
    PREFIX,
    TABLET_PUBLISHES,
    TABLET_SUBSCRIBES,
    is_valid_tablet_id,
    topic,
)

from . import BrokerAdminError

__all__ = ["BACKEND_ROLE", "DynsecAdmin", "tablet_acls", "tablet_role"]

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
BACKEND_ROLE = "liens-backend"

# ACL priorities inside one role: higher is checked first, and the first matching ACL decides.
_ALLOW_PRIORITY = 10
_DENY_PRIORITY = 0

# Errors that mean "already in the state we want" for idempotent operations.
_EXISTS = "already exists"
_NOT_FOUND = "not found"

Acl = dict[str, Any]


def tablet_role(tablet_id: str) -> str:
    """The dynsec role holding ``tablet_id``'s ACLs."""
    return f"tablet-{tablet_id}"


def tablet_acls(tablet_id: str) -> list[Acl]:
    """The dynsec ACLs equivalent to :func:`kiosk.protocol.tablet_may` for one tablet.

    ``subscribeLiteral`` matches the subscription filter as a plain string, so a tablet cannot
    use a wildcard filter that happens to cover its topic (nor anything else).
    """
    acls: list[Acl] = []
    for channel in sorted(TABLET_PUBLISHES):
        acls.append(_acl("publishClientSend", topic(tablet_id, channel), True, _ALLOW_PRIORITY))
    for channel in sorted(TABLET_SUBSCRIBES):
        name = topic(tablet_id, channel)
        acls.append(_acl("subscribeLiteral", name, True, _ALLOW_PRIORITY))
        acls.append(_acl("publishClientReceive", name, True, _ALLOW_PRIORITY))
    # Mosquitto's default lets any client receive anything it is subscribed to: deny explicitly.
    acls.append(_acl("publishClientReceive", "#", False, _DENY_PRIORITY))
    return acls


def backend_acls() -> list[Acl]:
    """The backend user's ACLs: everything under ``liens/v1/``."""
    everything = f"{PREFIX}/#"
    return [
        _acl("publishClientSend", everything, True, _ALLOW_PRIORITY),
        _acl("publishClientReceive", everything, True, _ALLOW_PRIORITY),
        _acl("subscribePattern", everything, True, _ALLOW_PRIORITY),
        _acl("unsubscribePattern", everything, True, _ALLOW_PRIORITY),
    ]


def _acl(acltype: str, topic_name: str, allow: bool, priority: int) -> Acl:
    return {"acltype": acltype, "topic": topic_name, "allow": allow, "priority": priority}


def _acl_key(acl: Mapping[str, Any]) -> tuple[str, str, bool, int]:
    return (
        str(acl["acltype"]),
        str(acl["topic"]),
        bool(acl.get("allow", False)),
        int(acl.get("priority", -1)),
    )


class DynsecAdmin:
    """Manage Mosquitto's dynamic security clients and roles; implements ``BrokerAdmin``.

    It owns one paho-mqtt client (MQTT 3.1.1, background network thread), connected on first
    use or by :meth:`connect`, and closed by :meth:`close` (or the ``with`` statement). Every
    method is synchronous and thread-safe; each waits at most ``timeout`` seconds for Mosquitto's
    answer and raises :class:`~backend.broker.BrokerAdminError` with Mosquitto's error text.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        timeout: float = 5.0,
        tls_context: ssl.SSLContext | None = None,
        client_id: str | None = None,
    ) -> None:
        """Prepare a client for the dynsec administrator ``username`` at ``host:port``."""
        self.host = host
        self.port = port
        self.username = username
        self.timeout = timeout
        self._lock = threading.Lock()  # one command batch at a time, and connect once
        self._pending: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._pending_lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._started = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"liens-dynsec-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )
        self._client.username_pw_set(username, password)
        # Mosquitto kicks clients whose roles change, this admin included: come back quickly.
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        if tls_context is not None:
            self._client.tls_set_context(tls_context)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and subscribe to the responses; idempotent."""
        with self._lock:
            self._connect_locked()

    def _connect_locked(self) -> None:
        if self._started and self._subscribed.is_set():
            return
        if not self._started:
            self._connect_error = None
            try:
                self._client.connect(self.host, self.port, keepalive=30)
            except OSError as exc:
                raise BrokerAdminError(
                    f"cannot reach Mosquitto at {self.host}:{self.port}: {exc}"
                ) from exc
            self._client.loop_start()
            self._started = True
        if not self._subscribed.wait(self.timeout):
            error = self._connect_error or "no answer"
            self._stop_client()
            raise BrokerAdminError(
                f"cannot log in to Mosquitto's dynamic security as {self.username!r}: {error}"
            )

    def close(self) -> None:
        """Disconnect and stop the network thread; idempotent."""
        with self._lock:
            self._stop_client()

    def _stop_client(self) -> None:
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False
        self._connected.clear()
        self._subscribed.clear()

    def __enter__(self) -> DynsecAdmin:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._connect_error = str(reason_code)
            log.error("dynsec admin: connection refused: %s", reason_code)
            return
        self._connected.set()
        # (Re)subscribe on every connection: paho reconnects by itself after a drop.
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: Any,
        properties: Any,
    ) -> None:
        self._connected.clear()
        self._subscribed.clear()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[Any],
        properties: Any,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            self._connect_error = f"may not subscribe to {RESPONSE_TOPIC} (is it the admin?)"
            log.error("dynsec admin: %s", self._connect_error)
            return
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
            responses = body["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("dynsec admin: unreadable response %r", message.payload[:200])
            return
        for response in responses:
            if not isinstance(response, dict):
                continue
            correlation = response.get("correlationData")
            with self._pending_lock:
                waiter = self._pending.get(str(correlation))
            if waiter is None:
                continue  # another admin's answer, or one we gave up waiting for
            event, box = waiter
            box.append(response)
            event.set()

    # -- commands --------------------------------------------------------------------------

    def execute(
        self, commands: Iterable[Mapping[str, Any]], *, tolerate: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Send a batch of dynsec commands and return their responses, in order.

        Raise :class:`BrokerAdminError` when one fails, unless its error text contains one of
        the ``tolerate`` fragments (case-insensitive), e.g. ``"already exists"``.
        """
        tolerated = [fragment.lower() for fragment in tolerate]
        batch: list[dict[str, Any]] = []
        waiters: list[tuple[str, threading.Event, list[dict[str, Any]]]] = []
        for command in commands:
            correlation = uuid.uuid4().hex
            batch.append({**command, "correlationData": correlation})
            waiters.append((correlation, threading.Event(), []))
        if not batch:
            return []
        with self._lock:
            self._connect_locked()
            with self._pending_lock:
                for correlation, event, box in waiters:
                    self._pending[correlation] = (event, box)
            try:
                info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": batch}), qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    raise BrokerAdminError(
                        f"cannot send dynsec commands: {mqtt.error_string(info.rc)}"
                    )
                responses: list[dict[str, Any]] = []
                for (_, event, box), command in zip(waiters, batch, strict=True):
                    if not event.wait(self.timeout):
                        raise BrokerAdminError(
                            f"Mosquitto did not answer {command['command']!r} in {self.timeout} s"
                        )
                    responses.append(box[0])
            finally:
                with self._pending_lock:
                    for correlation, _, _ in waiters:
                        self._pending.pop(correlation, None)
        for command, response in zip(batch, responses, strict=True):
            error = response.get("error")
            if error and not any(fragment in str(error).lower() for fragment in tolerated):
                raise BrokerAdminError(f"dynsec {command['command']} failed: {error}")
        return responses

    def _one(self, command: Mapping[str, Any], *, tolerate: Iterable[str] = ()) -> dict[str, Any]:
        return self.execute([command], tolerate=tolerate)[0]

    def ensure_role(self, rolename: str, acls: list[Acl]) -> None:
        """Create ``rolename`` if needed and make its ACLs exactly ``acls``."""
        self._one({"command": "createRole", "rolename": rolename}, tolerate=[_EXISTS])
        current = self._one({"command": "getRole", "rolename": rolename})
        existing = {
            _acl_key(acl) for acl in current.get("data", {}).get("role", {}).get("acls", [])
        }
        wanted = {_acl_key(acl) for acl in acls}
        commands: list[dict[str, Any]] = []
        for acltype, topic_name, _, _ in sorted(existing - wanted):
            commands.append(
                {
                    "command": "removeRoleACL",
                    "rolename": rolename,
                    "acltype": acltype,
                    "topic": topic_name,
                }
            )
        for acltype, topic_name, allow, priority in sorted(wanted - existing):
            commands.append(
                {
                    "command": "addRoleACL",
                    "rolename": rolename,
                    **_acl(acltype, topic_name, allow, priority),
                }
            )
        # Removals first: dynsec keys ACLs on (type, topic): a changed ACL is removed, then added.
        self.execute(commands, tolerate=[_NOT_FOUND])

    def ensure_client(
        self, username: str, password: str | None, rolename: str, *, clientid: str | None = None
    ) -> None:
        """Create ``username`` with ``rolename``, or update its password and add the role.

        ``password=None`` leaves an existing client's password alone (and refuses to create one).
        ``clientid`` binds the account to that MQTT client id: Mosquitto then refuses a CONNECT
        with these credentials and another client id, and, as it checks credentials before
        taking a client id over, nobody else can connect under this one and kick its session.
        """
        if password is not None:
            command: dict[str, Any] = {
                "command": "createClient",
                "username": username,
                "password": password,
                "roles": [{"rolename": rolename}],
            }
            if clientid is not None:
                command["clientid"] = clientid
            created = self._one(command, tolerate=[_EXISTS])
            if not created.get("error"):
                return
            self._one({"command": "setClientPassword", "username": username, "password": password})
        client = self._client_info(username)
        if clientid is not None and client.get("clientid") != clientid:
            self._one({"command": "setClientId", "username": username, "clientid": clientid})
        if any(role.get("rolename") == rolename for role in client.get("roles", [])):
            return
        # Changing a client's roles kicks its connection: do it only when needed. When that
        # client is this very admin, Mosquitto 2.0.11 kicks us before answering and reports
        # "Internal error" although the role was added: paho reconnects, and we check again.
        myself = username == self.username
        self._one(
            {"command": "addClientRole", "username": username, "rolename": rolename},
            tolerate=["internal error"] if myself else [],
        )
        if myself and not self._has_role(username, rolename):
            raise BrokerAdminError(f"dynsec addClientRole {rolename} to {username} failed")

    def _client_info(self, username: str) -> dict[str, Any]:
        answer = self._one({"command": "getClient", "username": username})
        client = answer.get("data", {}).get("client", {})
        return client if isinstance(client, dict) else {}

    def _has_role(self, username: str, rolename: str) -> bool:
        roles = self._client_info(username).get("roles", [])
        return any(role.get("rolename") == rolename for role in roles)

    def bound_client_id(self, username: str) -> str | None:
        """The client id ``username`` is bound to, or None (tests and the health page)."""
        value = self._client_info(username).get("clientid")
        return value if isinstance(value, str) and value else None

    def ensure_backend_role(self, username: str, password: str | None = None) -> None:
        """Give ``username`` the ``liens-backend`` role (all of ``liens/v1/#``).

        With a password, the client is created (or its password set); without one it must exist
        already, e.g. the dynsec admin itself when the backend uses that account.
        """
        self.ensure_role(BACKEND_ROLE, backend_acls())
        self.ensure_client(username, password, BACKEND_ROLE)
        log.info("dynsec: %s has the %s role", username, BACKEND_ROLE)

    def bind_client_ids(self, tablet_ids: Iterable[str]) -> int:
        """Bind each tablet's account to its client id where it is not yet; return how many.

        Accounts created before client ids were bound (an older Liens) are mended at start: one
        ``listClients`` and one ``setClientId`` per unbound tablet (which reconnects once).
        """
        wanted = {tid for tid in tablet_ids if is_valid_tablet_id(tid)}
        if not wanted:
            return 0
        listed = self._one({"command": "listClients", "verbose": True})
        clients = listed.get("data", {}).get("clients", [])
        unbound = sorted(
            str(client["username"])
            for client in clients
            if isinstance(client, dict)
            and client.get("username") in wanted
            and client.get("clientid") != client.get("username")
        )
        for i in range(0, len(unbound), 100):
            self.execute(
                [
                    {"command": "setClientId", "username": tid, "clientid": tid}
                    for tid in unbound[i : i + 100]
                ]
            )
        if unbound:
            log.info("dynsec: %d tablet accounts bound to their client id", len(unbound))
        return len(unbound)

    # -- BrokerAdmin -----------------------------------------------------------------------

    def register_tablet(self, tablet_id: str, password: str) -> None:
        """Create (or update) the tablet's client and its ``tablet-{tid}`` role."""
        if not is_valid_tablet_id(tablet_id):
            raise BrokerAdminError(f"invalid tablet id: {tablet_id!r}")
        role = tablet_role(tablet_id)
        self.ensure_role(role, tablet_acls(tablet_id))
        self.ensure_client(tablet_id, password, role, clientid=tablet_id)
        log.info("dynsec: tablet %s registered", tablet_id)

    def unregister_tablet(self, tablet_id: str) -> None:
        """Delete the tablet's client (which disconnects it) and its role; idempotent."""
        if not is_valid_tablet_id(tablet_id):
            raise BrokerAdminError(f"invalid tablet id: {tablet_id!r}")
        self.execute(
            [
                {"command": "deleteClient", "username": tablet_id},
                {"command": "deleteRole", "rolename": tablet_role(tablet_id)},
            ],
            tolerate=[_NOT_FOUND],
        )
        log.info("dynsec: tablet %s unregistered", tablet_id)
