"""Where the tablet keeps its state, and its credentials once enrolled."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk import __version__


def default_data_dir() -> Path:
    return Path(os.environ.get("LIENS_KIOSK_DATA_DIR") or Path.home() / ".local/share/liens-kiosk")


@dataclass(frozen=True)
class MqttCredentials:
    """What the backend gave this tablet at enrolment: its own broker account."""

    host: str
    port: int
    username: str
    password: str
    tls: bool = False


@dataclass(frozen=True)
class Credentials:
    server_url: str
    tablet_id: str
    tablet_name: str
    home_name: str
    mqtt: MqttCredentials

    def to_json(self) -> dict[str, Any]:
        return {
            "server_url": self.server_url,
            "tablet_id": self.tablet_id,
            "tablet_name": self.tablet_name,
            "home_name": self.home_name,
            "mqtt": {
                "host": self.mqtt.host,
                "port": self.mqtt.port,
                "username": self.mqtt.username,
                "password": self.mqtt.password,
                "tls": self.mqtt.tls,
            },
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Credentials:
        m = obj["mqtt"]
        return cls(
            server_url=str(obj["server_url"]),
            tablet_id=str(obj["tablet_id"]),
            tablet_name=str(obj.get("tablet_name", "")),
            home_name=str(obj.get("home_name", "")),
            mqtt=MqttCredentials(
                host=str(m["host"]),
                port=int(m["port"]),
                username=str(m["username"]),
                password=str(m["password"]),
                tls=bool(m.get("tls", False)),
            ),
        )


@dataclass
class TabletPreferences:
    """What staff set on the tablet's staff screen: its language, volume and brightness.

    ``language`` is the tablet's (the staff screen's); residents' screens follow each resident.
    ``volume`` and ``brightness`` are fractions from 0 to 1.
    """

    language: str = "fr"
    volume: float = 0.8
    brightness: float = 1.0

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TabletPreferences:
        def fraction(value: Any, default: float) -> float:
            try:
                return min(1.0, max(0.0, float(value)))
            except (TypeError, ValueError):
                return default

        return cls(
            language=str(obj.get("language") or "fr"),
            volume=fraction(obj.get("volume"), 0.8),
            brightness=fraction(obj.get("brightness"), 1.0),
        )


@dataclass
class KioskSettings:
    """The tablet's local settings; nothing here is secret except the credentials file."""

    data_dir: Path = field(default_factory=default_data_dir)
    server_url: str = field(
        default_factory=lambda: os.environ.get("LIENS_SERVER_URL", "http://127.0.0.1:8000")
    )
    app_version: str = __version__

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "kiosk.db"

    def load_credentials(self) -> Credentials | None:
        try:
            return Credentials.from_json(json.loads(self.credentials_path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # A damaged file means the tablet must be enrolled again; do not crash the kiosk.
            return None

    def save_credentials(self, credentials: Credentials) -> None:
        """Write the credentials readable by this user only (mode 600), atomically."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.credentials_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(credentials.to_json(), f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.credentials_path)

    def forget_credentials(self) -> None:
        self.credentials_path.unlink(missing_ok=True)

    @property
    def preferences_path(self) -> Path:
        return self.data_dir / "preferences.json"

    def load_preferences(self) -> TabletPreferences:
        """The staff screen's settings; defaults when none were saved or the file is damaged."""
        try:
            obj = json.loads(self.preferences_path.read_text())
        except (OSError, ValueError):
            return TabletPreferences()
        return TabletPreferences.from_json(obj if isinstance(obj, dict) else {})

    def save_preferences(self, preferences: TabletPreferences) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.preferences_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "language": preferences.language,
                    "volume": preferences.volume,
                    "brightness": preferences.brightness,
                }
            )
        )
        os.replace(tmp, self.preferences_path)
