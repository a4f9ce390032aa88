"""Settings of the tablet (its credentials file) and of the backend (its secret)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.settings import Settings
from kiosk.settings import Credentials, KioskSettings, MqttCredentials

CREDENTIALS = Credentials(
    server_url="https://liens.example.org",
    tablet_id="t0123456789ab",
    tablet_name="Salon, 1er étage",
    home_name="Les Tilleuls",
    mqtt=MqttCredentials(
        host="mqtt.example.org", port=8883, username="t0123456789ab", password="s3cr3t", tls=True
    ),
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_written_mode_600_and_read_back(tmp_path: Path) -> None:
    settings = KioskSettings(data_dir=tmp_path / "kiosk")
    assert settings.load_credentials() is None
    settings.save_credentials(CREDENTIALS)
    assert mode(settings.credentials_path) == 0o600
    assert settings.load_credentials() == CREDENTIALS
    assert list(settings.data_dir.iterdir()) == [settings.credentials_path]  # no temp file left


def test_saving_again_replaces_the_credentials(tmp_path: Path) -> None:
    settings = KioskSettings(data_dir=tmp_path)
    settings.save_credentials(CREDENTIALS)
    settings.credentials_path.chmod(0o644)
    other = Credentials(**{**CREDENTIALS.__dict__, "tablet_name": "Cuisine"})
    settings.save_credentials(other)
    assert mode(settings.credentials_path) == 0o600
    assert settings.load_credentials() == other


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        "[]",
        '"text"',
        "{}",
        '{"server_url": "x", "tablet_id": "t0123456789ab"}',
        '{"server_url": "x", "tablet_id": "abc", "mqtt": {"host": "h"}}',
        '{"server_url": "x", "tablet_id": "abc", "mqtt": {"host": "h", "port": "not a port",'
        ' "username": "u", "password": "p"}}',
        '{"server_url": "x", "tablet_id": "abc", "mqtt": []}',
    ],
)
def test_a_damaged_credentials_file_means_not_enrolled(tmp_path: Path, content: str) -> None:
    settings = KioskSettings(data_dir=tmp_path)
    settings.credentials_path.write_text(content)
    assert settings.load_credentials() is None


def test_forget_credentials(tmp_path: Path) -> None:
    settings = KioskSettings(data_dir=tmp_path)
    settings.save_credentials(CREDENTIALS)
    settings.forget_credentials()
    settings.forget_credentials()  # idempotent
    assert settings.load_credentials() is None


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIENS_SECRET_KEY", "LIENS_ENVIRONMENT", "LIENS_DATA_DIR", "LIENS_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("secret", ["changeme", "", "  ChangeMe ", "secret", "dev"])
def test_backend_refuses_a_placeholder_secret_outside_development(
    tmp_path: Path, clean_env: None, secret: str
) -> None:
    with pytest.raises(ValidationError, match="LIENS_SECRET_KEY"):
        Settings(environment="production", secret_key=secret, data_dir=tmp_path)
    assert not (tmp_path / "secret.key").exists()


def test_backend_accepts_a_real_secret_in_production(tmp_path: Path, clean_env: None) -> None:
    settings = Settings(environment="production", secret_key="x" * 40, data_dir=tmp_path)
    assert settings.secret_key == "x" * 40


def test_backend_reads_the_secret_from_the_environment(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIENS_ENVIRONMENT", "production")
    monkeypatch.setenv("LIENS_SECRET_KEY", "changeme")
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path)


def test_development_generates_a_secret_file_mode_600_and_keeps_it(
    tmp_path: Path, clean_env: None
) -> None:
    data_dir = tmp_path / "server"
    first = Settings(environment="development", secret_key="changeme", data_dir=data_dir)
    secret_file = data_dir / "secret.key"
    assert mode(secret_file) == 0o600
    assert first.secret_key == secret_file.read_text().strip()
    assert len(first.secret_key) >= 32
    assert first.secret_key != "changeme"
    again = Settings(environment="development", data_dir=data_dir)
    assert again.secret_key == first.secret_key
    assert again.mqtt_password == first.mqtt_password


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path, clean_env: None) -> None:
    settings = Settings(secret_key="x" * 40, data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'liens.db'}"
    assert settings.own_broker


def test_own_broker_password_is_random_per_installation_not_derived_from_the_secret(
    tmp_path: Path, clean_env: None
) -> None:
    key = "k" * 40
    one = Settings(secret_key=key, data_dir=tmp_path / "one")
    two = Settings(secret_key=key, data_dir=tmp_path / "two")
    assert one.mqtt_password != two.mqtt_password  # same secret key, two installations
    assert len(one.mqtt_password) >= 40
    assert key not in one.mqtt_password
    credentials = tmp_path / "one" / "mosquitto" / "credentials.json"
    assert mode(credentials) == 0o600
    # `liens admin` (another process, another Settings) reads the same password.
    assert Settings(secret_key="other" * 8, data_dir=tmp_path / "one").mqtt_password == (
        one.mqtt_password
    )
