"""The apply step: what a committed decision sets in motion, carried out in one place.

A service function returns :class:`~backend.services.decisions.Consequences`; its caller commits
and calls one of:

- :func:`apply`, in the serving process (dashboard, API, family pages): the running
  :class:`~backend.runtime.Backend`'s bridge and broker admin, and the app's
  :class:`~backend.calls.hub.CallHub`, which tells the other replicas (broadcast) to end their
  calls and close their pages too;
- :func:`apply_from_another_process`, for ``liens admin``: it connects briefly to the broker as
  the backend, and asks every serving replica, by a broadcast on ``liens/v1/backend/all/...``,
  to end the calls and close the pages (each replica's hub handles it).

Either way, in this order: calls end (both sides are told why), pages of revoked or regenerated
links close, retired tablets lose their broker account and their retained ``config`` and
``status``, the tablets whose configuration changed get it again, then commands are sent.
Nothing is raised when the broker is down: the revisions were bumped in the transaction, and the
backend republishes every configuration when its connection comes back or it starts.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backend.services.decisions import Consequences
from kiosk import protocol
from kiosk.protocol import Channel

if TYPE_CHECKING:
    from backend.broker import BrokerAdmin
    from backend.broker.dynsec import DynsecAdmin
    from backend.calls.hub import CallHub
    from backend.db import Database
    from backend.mqtt.bridge import Bridge
    from backend.runtime import Backend
    from backend.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Applied:
    """What the apply step did (the CLI prints it, the log says it)."""

    consequences: Consequences
    published: list[str] = field(default_factory=list)
    calls_ended: int = 0  # by this process's hub (other replicas end theirs on the broadcast)
    pages_closed: int = 0
    retired: list[str] = field(default_factory=list)  # account and retained topics removed
    commands_sent: list[str] = field(default_factory=list)  # tablet ids
    # What the CLI asked of every replica (in-process, the hub broadcasts on its own).
    broadcast: list[str] = field(default_factory=list)
    # What could not be done now: configurations follow with the republish at the next
    # reconnection or start; a retirement left on the broker is done again by retiring again.
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            **self.consequences.summary(),
            "published_to": self.published,
            "calls_ended_here": self.calls_ended,
            "pages_closed_here": self.pages_closed,
            "retired_on_broker": self.retired,
            "commands_sent": self.commands_sent,
            "broadcast": self.broadcast,
            "problems": self.problems,
        }


def _log(applied: Applied, via: str) -> None:
    level = logging.DEBUG if applied.consequences.empty else logging.INFO
    log.log(
        level,
        "decision applied (%s): %s",
        via,
        json.dumps(applied.summary(), sort_keys=True),
        extra={"consequences": applied.consequences, "via": via},
    )


def _retire_on_broker(
    tablet_id: str, bridge: Bridge | None, admin: BrokerAdmin | None, applied: Applied
) -> None:
    """The account first (it kicks a live session, whose last will may say ``offline``), then
    the retained topics: a stolen tablet can neither reconnect nor read its old configuration."""
    from backend.broker import BrokerAdminError
    from backend.mqtt.bridge import BrokerUnavailable

    try:
        if admin is not None:
            admin.unregister_tablet(tablet_id)
        if bridge is None:
            raise BrokerUnavailable("the backend is not connected to the broker")
        bridge.clear_config(tablet_id)
        bridge.publish(protocol.topic(tablet_id, Channel.STATUS), b"", retain=True)
    except (BrokerUnavailable, BrokerAdminError, OSError) as exc:
        log.warning("retired tablet %s not removed from the broker now: %s", tablet_id, exc)
        applied.problems.append(f"retire {tablet_id}: {exc}")
    else:
        applied.retired.append(tablet_id)


def _publish(db: Database, bridge: Bridge | None, tablet_ids: list[str], applied: Applied) -> None:
    from backend.mqtt.bridge import BrokerUnavailable
    from backend.runtime import publish_configs

    if not tablet_ids:
        return
    try:
        if bridge is None:
            raise BrokerUnavailable("the backend is not connected to the broker")
        applied.published = publish_configs(db, bridge, tablet_ids)
    except BrokerUnavailable as exc:
        log.warning("configuration of %s not published now: %s", tablet_ids, exc)
        applied.problems.append(f"publish: {exc}")


def _send_commands(bridge: Bridge | None, consequences: Consequences, applied: Applied) -> None:
    from backend.mqtt.bridge import BrokerUnavailable

    for command in consequences.commands:
        if command.tablet_id in consequences.retire:
            continue
        try:
            if bridge is None:
                raise BrokerUnavailable("the backend is not connected to the broker")
            bridge.send_command(command.tablet_id, command.command, **dict(command.data))
        except BrokerUnavailable as exc:
            log.warning("%s not sent to %s: %s", command.command, command.tablet_id, exc)
            applied.problems.append(f"{command.command} {command.tablet_id}: {exc}")
        else:
            applied.commands_sent.append(command.tablet_id)


def apply(backend: Backend, hub: CallHub | None, consequences: Consequences) -> Applied:
    """Carry out ``consequences`` from the serving process, after the decision's commit.

    Called from a synchronous route (the thread pool), never from the event loop: the hub's
    thread-safe methods wait for the loop.
    """
    applied = Applied(consequences)
    if hub is not None:
        for which in consequences.end_calls:
            try:
                applied.calls_ended += hub.end_calls_threadsafe(
                    call_id=which.call_id,
                    approval_id=which.approval_id,
                    resident_id=which.resident_id,
                    contact_id=which.contact_id,
                    reason=which.reason,
                )
            except Exception as exc:  # the loop is busy or stopping: the tablet's config follows
                log.warning("calls %s not ended now: %s", which, exc)
                applied.problems.append(f"end_calls: {exc}")
        for contact_id in sorted(consequences.close_pages):
            try:
                applied.pages_closed += hub.close_pages_threadsafe(contact_id=contact_id)
            except Exception as exc:
                log.warning("pages of %s not closed now: %s", contact_id, exc)
                applied.problems.append(f"close_pages: {exc}")
    for tablet_id in sorted(consequences.retire):
        _retire_on_broker(tablet_id, backend.bridge, backend.broker_admin, applied)
    _publish(backend.db, backend.bridge, consequences.to_publish, applied)
    _send_commands(backend.bridge, consequences, applied)
    _log(applied, "in_process")
    return applied


def _broker_admin(settings: Settings) -> DynsecAdmin:
    """The broker's account administration (Mosquitto's dynamic security), from another
    process: the backend's own account administers it."""
    from backend.broker.dynsec import DynsecAdmin

    return DynsecAdmin(
        settings.mqtt_host, settings.mqtt_port, settings.mqtt_username, settings.mqtt_password
    )


def apply_from_another_process(
    settings: Settings, db: Database, consequences: Consequences
) -> Applied:
    """Carry out ``consequences`` from the CLI: connect briefly as the backend, then disconnect.

    Calls and pages live in the serving replicas' hubs: each is asked, by one broadcast that
    every replica receives, to end its matching calls and close its pages. The broadcast waits
    for the broker's acknowledgement, so it is on its way to the replicas when this returns.
    """
    from backend.mqtt.bridge import BROADCAST, BrokerUnavailable, replica_topic
    from backend.runtime import publishing_bridge

    applied = Applied(consequences)
    if consequences.empty:
        _log(applied, "another_process")
        return applied
    bridge = publishing_bridge(settings)
    try:
        bridge.start(timeout=5)
    except BrokerUnavailable as exc:
        # No server running: nothing to end or close; it republishes everything when it starts.
        applied.problems.append(f"broker: {exc}")
        _log(applied, "another_process")
        return applied
    sender = f"cli-{uuid.uuid4().hex[:8]}"  # never a replica's id: every replica handles it

    def broadcast(what: str, body: dict[str, Any]) -> None:
        payload = json.dumps({"from": sender, **body}).encode()
        try:
            bridge.publish(replica_topic(BROADCAST, what), payload)
        except BrokerUnavailable as exc:
            applied.problems.append(f"{what}: {exc}")
        else:
            applied.broadcast.append(what)

    try:
        for which in consequences.end_calls:
            broadcast("end_calls", {**which.filters(), "reason": which.reason})
        for contact_id in sorted(consequences.close_pages):
            broadcast("close_pages", {"contact_id": contact_id})
        if consequences.retire:
            with _broker_admin(settings) as admin:
                for tablet_id in sorted(consequences.retire):
                    _retire_on_broker(tablet_id, bridge, admin, applied)
        _publish(db, bridge, consequences.to_publish, applied)
        _send_commands(bridge, consequences, applied)
    finally:
        bridge.stop()
    _log(applied, "another_process")
    return applied
