"""deploy/kiosk: the systemd unit restarts the app, the install script is valid shell."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from screens import lockdown

KIOSK = Path(__file__).resolve().parents[2] / "deploy" / "kiosk"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((KIOSK / "liens-kiosk.service").read_text())
    return parser


def test_unit_restarts_the_app_always_but_not_when_staff_leave():
    service = unit()["Service"]
    assert service["Restart"] == "always"
    assert service["RestartSec"] == "2"
    assert service["RestartPreventExitStatus"].split() == [str(lockdown.STAFF_EXIT_STATUS)]
    assert service["ExecStart"].startswith("/usr/bin/cage")
    assert service["ExecStart"].endswith("-- /opt/liens/.venv/bin/liens kiosk")
    assert service["User"] == "liens-kiosk"
    assert (
        "Environment=LIENS_KIOSK_DATA_DIR=/var/lib/liens-kiosk"
        in (KIOSK / "liens-kiosk.service").read_text()
    )
    assert unit()["Unit"]["StartLimitIntervalSec"] == "0"


def test_install_script_is_valid_bash():
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    subprocess.run(["bash", "-n", str(KIOSK / "install.sh")], check=True)


def test_echo_cancel_dropin_loads_the_module():
    text = (KIOSK / "50-liens-echo-cancel.conf").read_text()
    assert "libpipewire-module-echo-cancel" in text
    assert text.count("{") == text.count("}") and text.count("[") == text.count("]")
