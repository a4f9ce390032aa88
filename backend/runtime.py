"""The running backend: database, broker (its own Mosquitto or a shared one), the bridge, and
publishing.

``Backend`` is what ``liens serve`` and ``liens demo`` run. A staff decision reaches the tablets
through the apply step (``backend.apply``), which publishes with :func:`publish_configs`, over
the running bridge or, from the CLI, over a :func:`publishing_bridge`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select, text

from backend.broker import BrokerAdminError
from backend.db import Database
from backend.models import Tablet
from backend.mqtt.bridge import Bridge, BrokerUnavailable, ConfigBatch
from backend.services import tablets as tablet_service
from backend.settings import Settings

if TYPE_CHECKING:
    from backend.broker.dynsec import DynsecAdmin
    from backend.broker.mosquitto import SupervisedMosquitto
    from backend.calls.routing import Router
    from backend.services.retention import RetentionJob

log = logging.getLogger(__name__)


class Backend:
    """Everything the server process owns, started and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        # Liens's own Mosquitto when no LIENS_MQTT_URL is set; None with a shared broker.
        self.broker: SupervisedMosquitto | None = None
        self.broker_admin: DynsecAdmin | None = None
        self.bridge: Bridge | None = None
        # Signalling across replicas (docs/scale.md): one replica is a cluster of one.
        self.router: Router | None = None
        # Roll-up and retention, every hour (backend/services/retention.py).
        self.retention: RetentionJob | None = None
        # Every tablet's configuration published again after a start, in the background.
        self.republisher: RepublishJob | None = None
        self._republish_lock = threading.Lock()

    def start(self) -> None:
        self.db.migrate()
        s = self.settings
        from backend.calls.calllog import close_calls_left_open
        from backend.calls.routing import default_replica_id

        replica_id = s.replica_id or default_replica_id(s.port)
        with self.db.session() as session:
            # A backend killed during a call left its row open: the tablet's event (stored, or
            # still in its outbox) closes it with the tablet's reason, else "server_restart".
            closed = close_calls_left_open(session, replica_id=replica_id)
        if closed:
            log.warning("%d calls left open by an earlier run closed", closed)
        port = s.mqtt_port
        if s.own_broker:
            from backend.broker.mosquitto import SupervisedMosquitto

            self.broker = SupervisedMosquitto(
                s.broker_dir, s.embedded_mqtt_host, s.embedded_mqtt_port
            )
            self.broker.start()
            port = self.broker.port
        from backend.broker.dynsec import DynsecAdmin

        dynsec = DynsecAdmin(s.mqtt_host, port, s.mqtt_username, s.mqtt_password)
        # The dynsec admin may only publish to $CONTROL by default: give it liens/v1/#.
        dynsec.ensure_backend_role(s.mqtt_username)
        self.broker_admin = dynsec
        try:
            # Accounts made by an older Liens were not bound to their client id: bind them.
            dynsec.bind_client_ids(enrolled_tablet_ids(self.db))
        except BrokerAdminError:
            log.exception("tablet accounts not bound to their client ids now")
        from backend.calls.routing import Router

        self.bridge = Bridge(
            host=s.mqtt_host,
            port=port,
            username=s.mqtt_username,
            password=s.mqtt_password,
            database=self.db,
            replica_id=replica_id,
        )
        self.router = Router(self.db, self.bridge, replica_id)
        self.router.start()
        self.bridge.signal_router = self.router.route_signal
        self.bridge.start()
        # Retained configurations normally survive in the broker (every change republishes), but
        # may be gone: publish them all again, off the serving path (pages answer at once).
        self.republisher = RepublishJob(self.db, self.bridge)
        self.republisher.start()
        # A change made while the broker was unreachable could not be published: when the
        # connection comes back, republish (cheap: batched, about 1 s per 1,000 tablets).
        self.bridge.on_reconnected = self._republish_after_reconnection
        from backend.services.retention import RetentionJob

        self.retention = RetentionJob(self.db)
        self.retention.start()

    def _republish_after_reconnection(self) -> None:
        bridge = self.bridge
        if bridge is None:
            return
        with self._republish_lock:
            running = self.republisher
            if running is not None and not running.done.is_set():
                return  # the one under way rebuilds every configuration from the database
            log.info("broker connection back: republishing every configuration")
            self.republisher = RepublishJob(self.db, bridge)
            self.republisher.start()

    def stop(self) -> None:
        if self.bridge is not None:
            self.bridge.on_reconnected = None
        if self.republisher is not None:
            self.republisher.stop()
            self.republisher = None
        if self.retention is not None:
            self.retention.stop()
            self.retention = None
        if self.router is not None:
            self.router.stop()
            self.router = None
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        if self.broker_admin is not None:
            self.broker_admin.close()
            self.broker_admin = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        self.db.engine.dispose()

    @property
    def mqtt_port(self) -> int:
        if self.broker is not None:
            return int(self.broker.port)
        return self.settings.mqtt_port

    def republish_all(self) -> None:
        """Publish every enrolled tablet's configuration now, in batches (see :func:`republish`).

        The start does it in the background (:class:`RepublishJob`); this is the same, waited for.
        """
        if self.bridge is None:
            raise BrokerUnavailable("the backend is not connected to the broker")
        result = republish(self.db, self.bridge, threading.Event())
        if result.failed:
            raise BrokerUnavailable(f"{len(result.failed)} configurations not acknowledged")

    def publish_configs(self, tablet_ids: list[str]) -> list[str]:
        if self.bridge is None:
            raise BrokerUnavailable("the backend is not connected to the broker")
        return publish_configs(self.db, self.bridge, tablet_ids)


def publish_configs(db: Database, bridge: Bridge, tablet_ids: list[str]) -> list[str]:
    """Publish the current configuration of each tablet; return the ids published."""
    published = []
    for tablet_id in tablet_ids:
        with db.session() as session:
            tablet = session.get(Tablet, tablet_id)
            if tablet is None or tablet.retired_at is not None or tablet.enrolled_at is None:
                continue
            data = tablet_service.build_config(session, tablet)
        bridge.publish_config(tablet_id, data)
        published.append(tablet_id)
    return published


# -- the start's republish ----------------------------------------------------------------------

REPUBLISH_BATCH = 100  # tablets built and published together
REPUBLISH_ACK_TIMEOUT_S = 30.0  # for a whole batch's acknowledgements
REPUBLISH_ROUNDS = 3  # a tablet changed meanwhile is rebuilt at most this many times
RETRY_DELAYS_S = (2.0, 5.0, 15.0, 30.0, 60.0)  # after a broker or database failure
# pg_try_advisory_lock key of the start's republish: one replica does it (any constant).
REPUBLISH_LOCK_KEY = 0x4C49454E5301  # "LIENS" 1


@dataclass
class RepublishResult:
    """What one :func:`republish` did."""

    published: list[str] = field(default_factory=list)
    # Not published: a newer configuration went out meanwhile (this process), round after round.
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # not acknowledged or not built: retry
    batches: int = 0
    seconds: float = 0.0


def enrolled_tablet_ids(db: Database) -> list[str]:
    """Every enrolled, not retired tablet, home by home (a batch spans few homes)."""
    with db.session() as session:
        return list(
            session.scalars(
                select(Tablet.id)
                .where(Tablet.retired_at.is_(None), Tablet.enrolled_at.is_not(None))
                .order_by(Tablet.home_id, Tablet.id)
            )
        )


def _publish_batch(db: Database, bridge: Bridge, ids: list[str], timeout: float) -> ConfigBatch:
    """Build and publish one batch; ``skipped`` holds the tablets to build again later.

    A configuration change made by staff meanwhile must never be overwritten by the older
    configuration built here:

    - in this process, ``Bridge.config_marks`` is taken before building, and a tablet whose
      configuration was sent since (by a staff action) is not sent from here;
    - on PostgreSQL (several replicas, the CLI), the batch's tablet rows are read ``FOR SHARE SKIP
      LOCKED`` in the transaction that builds the configurations, and the transaction ends only
      once they are acknowledged: a change bumps its tablets' ``config_revision`` in its own
      transaction, so it commits (and then publishes) after this batch is on the broker, or it
      already committed and this batch read it; a row being changed right now is skipped;
    - on SQLite (one server; the CLI may write), the revisions are read again after building,
      just before sending, and a tablet whose revision moved is skipped.

    Skipped tablets are built again from the database in a later round, so they end up with
    their newest configuration even if the change's own publish failed.
    """
    marks = bridge.config_marks(ids)
    result = ConfigBatch()
    with db.session() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        query = select(Tablet).where(
            Tablet.id.in_(ids), Tablet.retired_at.is_(None), Tablet.enrolled_at.is_not(None)
        )
        if postgres:
            eligible = set(session.scalars(query.with_only_columns(Tablet.id)))
            query = query.with_for_update(read=True, skip_locked=True)
        tablets = list(session.scalars(query))
        if postgres:
            # Rows being changed right now (locked): built again in the next round.
            found = {t.id for t in tablets}
            result.skipped.extend(sorted(eligible - found))
        configs = tablet_service.build_configs(session, tablets)
        if not postgres:
            with db.session() as fresh:
                current = dict(
                    fresh.execute(
                        select(Tablet.id, Tablet.config_revision).where(
                            Tablet.id.in_(list(configs)),
                            Tablet.retired_at.is_(None),
                            Tablet.enrolled_at.is_not(None),
                        )
                    ).all()
                )
            for tablet_id in list(configs):
                if current.get(tablet_id) != configs[tablet_id]["revision"]:
                    del configs[tablet_id]
                    if tablet_id in current:
                        result.skipped.append(tablet_id)
        sent = bridge.publish_config_batch(configs, marks, timeout=timeout)
    result.published, result.failed, result.error = sent.published, sent.failed, sent.error
    result.skipped.extend(sent.skipped)
    return result


def republish(
    db: Database,
    bridge: Bridge,
    stop: threading.Event,
    tablet_ids: list[str] | None = None,
    *,
    batch: int | None = None,
    timeout: float = REPUBLISH_ACK_TIMEOUT_S,
) -> RepublishResult:
    """Publish every enrolled tablet's configuration, ``batch`` tablets at a time.

    Each batch is built with a few queries (``tablet_service.build_configs``), handed to the
    broker in one go and its acknowledgements awaited together. Tablets changed meanwhile are
    built again in a later round (see :func:`_publish_batch`). A batch the broker or the database
    fails is reported in ``failed``; nothing is raised. ``stop`` ends it between batches.
    """
    started = time.perf_counter()
    size = batch or REPUBLISH_BATCH
    result = RepublishResult()
    pending = enrolled_tablet_ids(db) if tablet_ids is None else list(tablet_ids)
    for _round in range(REPUBLISH_ROUNDS):
        again: list[str] = []
        for i in range(0, len(pending), size):
            if stop.is_set():
                result.failed.extend(pending[i:])
                break
            ids = pending[i : i + size]
            try:
                done = _publish_batch(db, bridge, ids, timeout)
            except Exception:
                log.exception("republish: a batch of %d configurations failed", len(ids))
                result.failed.extend(ids)
                continue
            result.batches += 1
            result.published.extend(done.published)
            result.failed.extend(done.failed)
            again.extend(done.skipped)
            if done.failed:
                log.warning(
                    "republish: %d configurations not acknowledged: %s",
                    len(done.failed),
                    done.error,
                )
        pending = again
        if not pending or stop.is_set():
            break
    result.skipped = pending
    result.seconds = time.perf_counter() - started
    return result


class RepublishJob:
    """The start's republish, in a daemon thread: the backend serves pages meanwhile.

    With several replicas on PostgreSQL, one does it: the replica that takes the advisory lock
    (``pg_try_advisory_lock``) republishes; one that finds it taken leaves it to that one. What
    the broker did not acknowledge is tried again later (2 s, 5 s, 15 s... up to every minute),
    rebuilt from the database each time, until every tablet is published or the job stops.
    """

    def __init__(self, db: Database, bridge: Bridge, *, batch: int | None = None) -> None:
        self.db = db
        self.bridge = bridge
        self.batch = batch
        self.done = threading.Event()  # the republish finished (or was left to another replica)
        self.published = 0
        self.attempts = 0
        self.left_to_another_replica = False
        self.last: RepublishResult | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="liens-republish", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            self._republish_locked()
        except Exception:  # never let the thread die with a traceback only
            log.exception("republish at start failed")
        finally:
            self.done.set()

    def _republish_locked(self) -> None:
        lock = None
        if self.db.engine.dialect.name == "postgresql":
            lock = self.db.engine.connect()
            got = lock.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": REPUBLISH_LOCK_KEY})
            lock.commit()
            if not got:
                lock.close()
                self.left_to_another_replica = True
                log.info("republish at start: another replica is doing it")
                return
        try:
            self._republish()
        finally:
            if lock is not None:
                try:
                    lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": REPUBLISH_LOCK_KEY})
                    lock.commit()
                finally:
                    lock.close()  # the lock goes with the connection anyway

    def _republish(self) -> None:
        pending: list[str] | None = None  # None: every enrolled tablet
        delays = iter(RETRY_DELAYS_S)
        while not self._stop.is_set():
            if not self.bridge.connected:
                self._stop.wait(1.0)
                continue
            self.attempts += 1
            try:
                result = republish(self.db, self.bridge, self._stop, pending, batch=self.batch)
            except Exception:
                # The database is down (the tablet list could not be read): later.
                log.exception("republish at start: no tablet list")
                result = None
            if result is not None:
                self.last = result
                self.published += len(result.published)
                log.info(
                    "republish at start: %d configurations in %.1f s (%d batches), %d to retry",
                    len(result.published),
                    result.seconds,
                    result.batches,
                    len(result.failed),
                )
                if not result.failed:
                    return
                pending = result.failed
            self._stop.wait(next(delays, RETRY_DELAYS_S[-1]))


def publishing_bridge(settings: Settings) -> Bridge:
    """A publish-only bridge for another process (the CLI), with the backend's credentials."""
    return Bridge(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        subscribe=False,
    )
