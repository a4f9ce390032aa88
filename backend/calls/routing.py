"""Signalling across backend replicas (docs/scale.md).

Several replicas sit behind a load balancer: a relative's WebSocket lands on one of them, and the
tablets' signals reach any of them (a shared MQTT subscription). What more than one replica needs
is in the database, never only in one replica's memory:

- ``backend_replicas``: each replica's heartbeat; a replica silent for :data:`ALIVE_S` is gone;
- ``browser_presence``: how many family pages of each contact each replica holds;
- ``call_routes``: which replica holds each call being set up or under way (the replica of its
  browser side, where the :class:`~backend.calls.hub.CallSession` lives).

A tablet signal received by replica X for a call held by replica Y is forwarded, unchanged, to
``liens/v1/backend/{Y}/signal/{tablet_id}``: Y handles it as if it came from the tablet. A signal
that opens a call (``invite``, or the ``supervise`` PIN typed before it) goes to a replica that
holds a page of the relative (this one when it does). Replies to tablets are published by the
replica that holds the call, on the tablet's own topic, so nothing else needs routing.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.models import Approval, BackendReplica, BrowserPresence, CallRoute, utcnow
from kiosk.calls.model import Invite, Supervise
from kiosk.protocol import Envelope

if TYPE_CHECKING:
    from backend.db import Database
    from backend.mqtt.bridge import Bridge

log = logging.getLogger(__name__)

HEARTBEAT_S = 3.0
ALIVE_S = 12.0
# Signals that may open a call the database does not know yet.
OPENING = (Invite.kind, Supervise.kind)


def default_replica_id(port: int) -> str:
    """``{hostname}-{port}``, made safe as a topic level and client id."""
    import re
    import socket

    raw = f"{socket.gethostname()}-{port}"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)[:48]


class Router:
    """This replica's view of the others: heartbeat, presence, call routes, forwarding."""

    def __init__(self, db: Database, bridge: Bridge, replica_id: str) -> None:
        self.db = db
        self.bridge = bridge
        self.replica_id = replica_id
        self.forwarded = 0  # signals sent on to another replica (health and tests)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Forget what an earlier run of this replica left, then beat every few seconds."""
        with self.db.session() as session:
            session.execute(
                delete(BrowserPresence).where(BrowserPresence.replica_id == self.replica_id)
            )
            session.execute(delete(CallRoute).where(CallRoute.replica_id == self.replica_id))
        self.heartbeat()
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="liens-replica", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        try:
            with self.db.session() as session:
                for model in (BrowserPresence, CallRoute):
                    session.execute(delete(model).where(model.replica_id == self.replica_id))
                session.execute(delete(BackendReplica).where(BackendReplica.id == self.replica_id))
        except Exception as exc:  # the database may be gone at shutdown; the heartbeat ages out
            log.warning("could not withdraw replica %s: %s", self.replica_id, exc)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.heartbeat()
            except Exception as exc:
                log.warning("replica heartbeat failed: %s", exc)

    def heartbeat(self) -> None:
        with self.db.session() as session:
            row = session.get(BackendReplica, self.replica_id)
            if row is None:
                session.add(BackendReplica(id=self.replica_id))
            else:
                row.last_seen = utcnow()

    def _alive(self, session: Session) -> set[str]:
        since = utcnow() - timedelta(seconds=ALIVE_S)
        rows = session.scalars(select(BackendReplica.id).where(BackendReplica.last_seen >= since))
        return set(rows) | {self.replica_id}

    # -- what the hub records (called in a worker thread) -------------------------------------

    def set_presence(self, contact_id: str, pages: int) -> None:
        with self._lock, self.db.session() as session:
            row = session.get(BrowserPresence, (contact_id, self.replica_id))
            if pages <= 0:
                if row is not None:
                    session.delete(row)
                return
            if row is None:
                session.add(
                    BrowserPresence(contact_id=contact_id, replica_id=self.replica_id, pages=pages)
                )
            else:
                row.pages, row.updated_at = pages, utcnow()

    def call_opened(
        self, call_id: str, contact_id: str, resident_id: str, tablet_ids: list[str]
    ) -> None:
        with self.db.session() as session:
            session.merge(
                CallRoute(
                    call_id=call_id,
                    replica_id=self.replica_id,
                    contact_id=contact_id,
                    resident_id=resident_id,
                    tablet_ids=sorted(tablet_ids),
                )
            )

    def call_closed(self, call_id: str) -> None:
        with self.db.session() as session:
            session.execute(
                delete(CallRoute).where(
                    CallRoute.call_id == call_id, CallRoute.replica_id == self.replica_id
                )
            )

    def busy_elsewhere(self, resident_id: str, tablet_ids: list[str]) -> bool:
        """Is the resident (or one of these tablets) in a call held by another live replica?"""
        with self.db.session() as session:
            alive = self._alive(session) - {self.replica_id}
            if not alive:
                return False
            routes = session.scalars(select(CallRoute).where(CallRoute.replica_id.in_(alive)))
            wanted = set(tablet_ids)
            return any(
                r.resident_id == resident_id or wanted & set(r.tablet_ids or ()) for r in routes
            )

    # -- routing tablet signals (called on paho's thread) --------------------------------------

    def owner(self, data: dict[str, Any]) -> str | None:
        """The live replica that should handle this signal; None when nobody in particular."""
        call_id = data.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            return None
        with self.db.session() as session:
            alive = self._alive(session)
            route = session.get(CallRoute, call_id)
            if route is not None:
                return route.replica_id if route.replica_id in alive else None
            if data.get("kind") not in OPENING:
                return None
            approval_id = data.get("approval_id")
            approval = session.get(Approval, approval_id) if isinstance(approval_id, str) else None
            if approval is None:
                return None
            holders = set(
                session.scalars(
                    select(BrowserPresence.replica_id).where(
                        BrowserPresence.contact_id == approval.contact_id,
                        BrowserPresence.pages > 0,
                    )
                )
            )
            holders &= alive
            if not holders or self.replica_id in holders:
                return None
            return min(holders)

    def route_signal(self, tablet_id: str, envelope: Envelope) -> bool:
        """Forward the signal to the replica holding its call; False to handle it here."""
        owner = self.owner(envelope.data)
        if owner is None or owner == self.replica_id:
            return False
        self.bridge.to_replica(
            owner, f"signal/{tablet_id}", {"envelope": envelope.to_bytes().decode()}
        )
        self.forwarded += 1
        log.info("signal %s of %s forwarded to %s", envelope.data.get("kind"), tablet_id, owner)
        return True
