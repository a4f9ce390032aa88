"""The running backend: database, broker (embedded or external), the bridge, and publishing.

``Backend`` is what ``liens serve`` and ``liens demo`` run; ``publish_configs`` is what the
admin CLI uses to make a change reach the tablets at once from another process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from backend.db import Database
from backend.models import Tablet
from backend.mqtt.bridge import Bridge, BrokerUnavailable
from backend.services import tablets as tablet_service
from backend.settings import Settings

if TYPE_CHECKING:
    from backend.broker import BrokerAdmin
    from backend.broker.embedded import EmbeddedBroker
    from backend.calls.routing import Router
    from backend.services.retention import RetentionJob

log = logging.getLogger(__name__)


class Backend:
    """Everything the server process owns, started and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.broker: EmbeddedBroker | None = None
        self.broker_admin: BrokerAdmin | None = None
        self.bridge: Bridge | None = None
        # Several replicas on Mosquitto/EMQX (docs/scale.md); None with the embedded broker.
        self.router: Router | None = None
        # Roll-up and retention, every hour (backend/services/retention.py).
        self.retention: RetentionJob | None = None

    def start(self) -> None:
        self.db.migrate()
        s = self.settings
        if s.embedded_broker:
            from backend.broker.embedded import EmbeddedBroker

            self.broker = EmbeddedBroker(
                s.embedded_mqtt_host,
                s.embedded_mqtt_port,
                authenticate=self.authenticate,
                backend_username=s.mqtt_username,
            )
            self.broker.start()
            self.broker_admin = self.broker
            port = self.broker.port
        else:
            from backend.broker.dynsec import DynsecAdmin

            dynsec = DynsecAdmin(s.mqtt_host, s.mqtt_port, s.mqtt_username, s.mqtt_password)
            # The dynsec admin may only publish to $CONTROL by default: give it liens/v1/#.
            dynsec.ensure_backend_role(s.mqtt_username)
            self.broker_admin = dynsec
            port = s.mqtt_port
        from backend.calls.routing import Router, default_replica_id

        replica_id = s.replica_id or default_replica_id(s.port)
        self.bridge = Bridge(
            host=s.mqtt_host,
            port=port,
            username=s.mqtt_username,
            password=s.mqtt_password,
            database=self.db,
            mqtt5=not s.embedded_broker,
            replica_id=replica_id,
        )
        if not s.embedded_broker:
            self.router = Router(self.db, self.bridge, replica_id)
            self.router.start()
            self.bridge.signal_router = self.router.route_signal
        self.bridge.start()
        try:
            self.republish_all()
        except BrokerUnavailable as exc:
            # Retained configurations normally survive in the broker; every change republishes.
            log.warning("configurations not all republished at start: %s", exc)
        from backend.services.retention import RetentionJob

        self.retention = RetentionJob(self.db)
        self.retention.start()

    def stop(self) -> None:
        if self.retention is not None:
            self.retention.stop()
            self.retention = None
        if self.router is not None:
            self.router.stop()
            self.router = None
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        close = getattr(self.broker_admin, "close", None)
        if callable(close) and self.broker_admin is not self.broker:
            close()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        self.db.engine.dispose()

    @property
    def mqtt_port(self) -> int:
        if self.broker is not None:
            return int(self.broker.port)
        return self.settings.mqtt_port

    def authenticate(self, username: str, password: str) -> bool:
        """The embedded broker's check of every CONNECT."""
        import hmac

        if username == self.settings.mqtt_username:
            return hmac.compare_digest(password, self.settings.mqtt_password)
        with self.db.session() as session:
            tablet = session.get(Tablet, username)
            if tablet is None or tablet.retired_at is not None or not tablet.password_hash:
                return False
            return tablet_service.verify_password(password, tablet.password_hash)

    def republish_all(self) -> None:
        """Publish every enrolled tablet's configuration (retained messages may be gone)."""
        with self.db.session() as session:
            ids = list(
                session.scalars(
                    select(Tablet.id).where(
                        Tablet.retired_at.is_(None), Tablet.enrolled_at.is_not(None)
                    )
                )
            )
        self.publish_configs(ids)

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


def publishing_bridge(settings: Settings) -> Bridge:
    """A publish-only bridge for another process (the CLI), with the backend's credentials."""
    return Bridge(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        subscribe=False,
    )


def publish_from_another_process(
    settings: Settings, db: Database, tablet_ids: list[str]
) -> dict[str, object]:
    """Used by the CLI: connect briefly as the backend, publish, disconnect.

    When the broker is not running (no ``liens serve``), nothing is lost: the server republishes
    every configuration when it starts.
    """
    if not tablet_ids:
        return {"published_to": []}
    bridge = publishing_bridge(settings)
    try:
        bridge.start(timeout=5)
    except BrokerUnavailable as exc:
        log.info("configuration not published now: %s", exc)
        return {"published_to": [], "pending": tablet_ids, "note": str(exc)}
    try:
        return {"published_to": publish_configs(db, bridge, tablet_ids)}
    finally:
        bridge.stop()
