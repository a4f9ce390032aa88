"""Backend settings, read once from ``LIENS_*`` environment variables."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from backend.broker.mosquitto import BrokerCredentials

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev"}


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "liens"


class Settings(BaseSettings):
    """Everything the backend reads from its environment.

    ``LIENS_MQTT_URL`` unset means: run and supervise Liens's own Mosquitto 2 (loopback, data in
    ``$LIENS_DATA_DIR/mosquitto``). Set, it is the URL of a shared Mosquitto 2 broker with the
    dynamic security plugin, with the credentials of its dynsec admin
    (``mqtt://user:password@host:port``). Both are driven the same way (MQTT 5, dynsec).
    """

    model_config = SettingsConfigDict(env_prefix="LIENS_", extra="ignore")

    environment: str = "development"
    data_dir: Path = default_data_dir()
    database_url: str = ""
    secret_key: str = ""
    # Where relatives and staff reach the server; used to build personal links.
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    mqtt_url: str = ""
    # Liens's own Mosquitto (used when mqtt_url is empty): loopback only unless told otherwise;
    # port 0 picks a free port (tests).
    embedded_mqtt_host: str = "127.0.0.1"
    embedded_mqtt_port: int = 1884
    # What tablets are told to connect to; defaults to the broker's own host and port.
    mqtt_public_host: str = ""
    mqtt_public_port: int = 0

    enrolment_code_ttl_hours: int = 72
    # Calls. ICE servers are the home's own coturn (use-auth-secret), never a public STUN:
    # LIENS_TURN_URLS="turn:turn.example.org:3478?transport=udp,stun:turn.example.org:3478".
    turn_urls: str = ""
    turn_secret: str = ""
    turn_ttl_s: int = 6 * 3600
    ring_timeout_s: float = 45.0
    # Several replicas (docs/scale.md): each needs its own stable id, kept across restarts (its
    # MQTT session, and the events queued in it, are found again by this id). Default: host-port.
    replica_id: str = ""
    # Family photos (docs/photos.md): the largest file accepted, the most pixels decoded (against
    # decompression bombs), how many files one upload may carry; stored under data_dir/photos.
    photo_max_bytes: int = 15 * 1024 * 1024
    photo_max_pixels: int = 50_000_000
    photo_max_files: int = 10
    photo_dir: Path | None = None
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _defaults_and_secret(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'liens.db'}"
        if self.secret_key.strip().lower() in PLACEHOLDER_SECRETS:
            if self.environment != "development":
                raise ValueError(
                    "LIENS_SECRET_KEY must be set to a long random value outside development"
                )
            self.secret_key = _development_secret(self.data_dir)
        return self

    @property
    def photos_dir(self) -> Path:
        return self.photo_dir or self.data_dir / "photos"

    @property
    def broker_dir(self) -> Path:
        """Liens's own Mosquitto's folder (config, dynsec file, credentials, persistence)."""
        return self.data_dir / "mosquitto"

    @property
    def own_broker(self) -> bool:
        """True when ``liens serve`` runs and supervises its own Mosquitto (no LIENS_MQTT_URL)."""
        return not self.mqtt_url

    @property
    def mqtt_host(self) -> str:
        if self.own_broker:
            return self.embedded_mqtt_host
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        if self.own_broker:
            if self.embedded_mqtt_port:
                return self.embedded_mqtt_port
            from backend.broker.mosquitto import listening_port

            return listening_port(self.broker_dir)  # a free port the server picked
        return urlsplit(self.mqtt_url).port or 1883

    @property
    def mqtt_username(self) -> str:
        if self.own_broker:
            return self._own_broker_credentials().username
        return urlsplit(self.mqtt_url).username or "liens-backend"

    @property
    def mqtt_password(self) -> str:
        if self.own_broker:
            # Random per installation, in a file of the data folder (mode 600) that `liens serve`
            # and `liens admin` both read: never derived from the secret key.
            return self._own_broker_credentials().password
        return urlsplit(self.mqtt_url).password or ""

    def _own_broker_credentials(self) -> BrokerCredentials:
        from backend.broker.mosquitto import broker_credentials

        return broker_credentials(self.broker_dir)

    @property
    def tablet_mqtt_host(self) -> str:
        return self.mqtt_public_host or self.mqtt_host

    @property
    def tablet_mqtt_port(self) -> int:
        return self.mqtt_public_port or self.mqtt_port


def _development_secret(data_dir: Path) -> str:
    """A per-installation secret kept in the data folder (mode 600), for development only."""
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret


@lru_cache
def get_settings() -> Settings:
    return Settings()
