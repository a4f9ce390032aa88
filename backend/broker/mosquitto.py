"""Liens's own Mosquitto 2: the broker ``liens serve`` and ``liens demo`` run when no
``LIENS_MQTT_URL`` is set.

There is one broker engine in Liens, Mosquitto 2 with the dynamic security plugin, and one ACL
engine (``backend/broker/dynsec.py``): a home or a demo runs it as a child process supervised by
the backend, a département points the backend at a shared one. Both are driven the same way.

:class:`SupervisedMosquitto` keeps everything in one folder (``$LIENS_DATA_DIR/mosquitto``):

- ``credentials.json`` (mode 600): the dynsec administrator's user name and a random password,
  made once per installation; the backend and ``liens admin`` (another process) log in with it;
- ``dynamic-security.json``: created by ``mosquitto_ctrl dynsec init``, then rewritten by the
  plugin on every change (tablet accounts, roles);
- ``mosquitto.conf``: generated at every start from :func:`broker_config` (the same security
  settings as ``deploy/mosquitto/mosquitto.conf``, which a test compares), listening on loopback
  by default;
- ``mosquitto.db`` (persistence: retained configurations and the backend's session), the log.

The process is restarted when it dies (after 0.5 s, then up to 10 s between tries) and stopped
with the backend. On Linux it is also told to stop if the backend is killed (``PR_SET_PDEATHSIG``),
so that a restarted backend finds its port free.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = [
    "ADMIN_USERNAME",
    "BrokerCredentials",
    "MosquittoNotFound",
    "SupervisedMosquitto",
    "broker_config",
    "broker_credentials",
    "login_answer",
    "dynsec_plugin_path",
    "listening_port",
    "mosquitto_binaries",
]

log = logging.getLogger(__name__)

ADMIN_USERNAME = "liens-admin"
CREDENTIALS_FILE = "credentials.json"
DYNSEC_FILE = "dynamic-security.json"
CONFIG_FILE = "mosquitto.conf"
LOG_FILE = "mosquitto.log"
PID_FILE = "mosquitto.pid"
PORT_FILE = "port"  # the port in use, for `liens admin` when the backend picked a free one

START_TIMEOUT_S = 15.0
RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0)

PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)

# The settings that make the broker safe and fit for Liens, shared with the production file
# (deploy/mosquitto/mosquitto.conf; tests/unit/test_broker_config.py compares them).
SECURITY_SETTINGS: tuple[tuple[str, str], ...] = (
    ("per_listener_settings", "false"),
    ("allow_anonymous", "false"),
    ("message_size_limit", "1048576"),
    ("max_inflight_messages", "20"),
    ("set_tcp_nodelay", "true"),
    ("max_queued_messages", "1000000"),
    ("max_queued_bytes", "0"),
    ("persistence", "true"),
)


class MosquittoNotFound(RuntimeError):
    """Mosquitto 2, its ``mosquitto_ctrl`` or its dynamic security plugin is not installed."""


class BrokerCredentials:
    """The dynsec administrator of Liens's own broker (the backend's account)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password


def broker_credentials(workdir: Path) -> BrokerCredentials:
    """The administrator's credentials, made once per installation (random, file mode 600).

    ``liens serve`` and ``liens admin`` read the same file: nothing is derived from another
    secret, so knowing the secret key (or guessing it) does not give the broker's password.
    """
    path = workdir / CREDENTIALS_FILE
    try:
        body = json.loads(path.read_text())
        return BrokerCredentials(str(body["username"]), str(body["password"]))
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f"{path} is damaged ({exc}); remove the folder {workdir}") from exc
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    credentials = BrokerCredentials(ADMIN_USERNAME, secrets.token_urlsafe(32))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"username": credentials.username, "password": credentials.password}, out)
    try:
        os.link(tmp, path)  # atomic, and never overwrites a file another process just wrote
    except FileExistsError:
        tmp.unlink()
        return broker_credentials(workdir)
    tmp.unlink()
    return credentials


def listening_port(workdir: Path) -> int:
    """The port Liens's own broker in ``workdir`` was last started on; 0 when never."""
    try:
        return int((workdir / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return 0


def mosquitto_binaries() -> tuple[str, str]:
    """The paths of ``mosquitto`` and ``mosquitto_ctrl``."""
    found: list[str] = []
    for name in ("mosquitto", "mosquitto_ctrl"):
        path = shutil.which(name)
        if path is None:
            for folder in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
                candidate = Path(folder) / name
                if os.access(candidate, os.X_OK):
                    path = str(candidate)
                    break
        if path is None:
            raise MosquittoNotFound(
                f"{name} is not installed: Liens runs its own Mosquitto 2 when LIENS_MQTT_URL is "
                "not set (Debian: apt-get install mosquitto mosquitto-clients)"
            )
        found.append(path)
    return found[0], found[1]


def dynsec_plugin_path() -> str:
    """Where Mosquitto's dynamic security plugin is on this machine."""
    for candidate in PLUGIN_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise MosquittoNotFound(
        "mosquitto_dynamic_security.so not found (Debian's mosquitto package ships it)"
    )


def broker_config(workdir: Path, host: str, port: int, plugin: str) -> str:
    """The ``mosquitto.conf`` of Liens's own broker, listening on ``host:port`` only."""
    lines = [
        "# Generated by Liens (backend/broker/mosquitto.py) at every start: edits are lost.",
        *(f"{key} {value}" for key, value in SECURITY_SETTINGS),
        f"plugin {plugin}",
        f"plugin_opt_config_file {workdir / DYNSEC_FILE}",
        f"persistence_location {workdir}/",
        "autosave_interval 60",
        f"log_dest file {workdir / LOG_FILE}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        # As root Mosquitto would switch to the `mosquitto` user, who cannot read this folder.
        f"user {getpass.getuser()}",
        f"listener {port} {host}",
    ]
    return "\n".join(lines) + "\n"


def free_port(host: str) -> int:
    """A TCP port free on ``host`` right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def login_answer(host: str, port: int, credentials: BrokerCredentials, timeout: float = 2.0) -> str:
    """The broker's answer to a CONNECT with ``credentials`` ("Success", "Not authorized"...).

    :class:`OSError` when nothing listens.
    """
    answer: list[str] = []
    done = threading.Event()

    def on_connect(*args: object) -> None:
        answer.append(str(args[3]))  # (client, userdata, flags, reason_code, properties)
        done.set()

    probe = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"liens-probe-{secrets.token_hex(4)}"
    )
    probe.username_pw_set(credentials.username, credentials.password)
    probe.on_connect = on_connect
    probe.connect(host, port, keepalive=5)
    probe.loop_start()
    try:
        done.wait(timeout)
    finally:
        probe.disconnect()
        probe.loop_stop()
    return answer[0] if answer else "no answer"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: the broker gets SIGTERM when the backend process dies, even by SIGKILL."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SupervisedMosquitto:
    """A Mosquitto 2 child process with dynamic security, restarted if it dies.

    ``port=0`` picks a free port at the first start and keeps it across restarts.
    """

    def __init__(self, workdir: Path, host: str = "127.0.0.1", port: int = 1884) -> None:
        self.workdir = workdir
        self.host = host
        self.port = port
        self.restarts = 0  # times the broker was started again after dying (health and tests)
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watchdog: threading.Thread | None = None

    @property
    def credentials(self) -> BrokerCredentials:
        return broker_credentials(self.workdir)

    @property
    def url(self) -> str:
        """``mqtt://admin:password@host:port``: what ``LIENS_MQTT_URL`` would be."""
        c = self.credentials
        return f"mqtt://{c.username}:{c.password}@{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Prepare the folder, start the broker and wait until its administrator can log in."""
        mosquitto, ctrl = mosquitto_binaries()
        plugin = dynsec_plugin_path()
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        credentials = self.credentials
        dynsec = self.workdir / DYNSEC_FILE
        if not dynsec.exists():
            done = subprocess.run(
                [ctrl, "dynsec", "init", str(dynsec), credentials.username, credentials.password],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode != 0:
                raise RuntimeError(f"mosquitto_ctrl dynsec init failed: {done.stderr.strip()}")
            os.chmod(dynsec, 0o600)
        self._stop_leftover()
        if self.port == 0:
            self.port = free_port(self.host)
        (self.workdir / CONFIG_FILE).write_text(
            broker_config(self.workdir, self.host, self.port, plugin)
        )
        (self.workdir / PORT_FILE).write_text(str(self.port))
        self._stopping.clear()
        with self._lock:
            self._spawn(mosquitto)
        self._wait_until_ready()
        self._watchdog = threading.Thread(
            target=self._watch, args=(mosquitto,), name="liens-mosquitto-watchdog", daemon=True
        )
        self._watchdog.start()
        log.info("Liens's Mosquitto listens on %s:%d (%s)", self.host, self.port, self.workdir)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL); it saves its retained messages first."""
        self._stopping.set()
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._watchdog is not None:
            self._watchdog.join(timeout)
            self._watchdog = None
        (self.workdir / PID_FILE).unlink(missing_ok=True)

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / LOG_FILE
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, mosquitto: str) -> None:
        self._process = subprocess.Popen(
            [mosquitto, "-c", str(self.workdir / CONFIG_FILE)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        (self.workdir / PID_FILE).write_text(str(self._process.pid))

    def _stop_leftover(self) -> None:
        """A broker left by an earlier run of this folder (its backend was killed): stop it."""
        path = self.workdir / PID_FILE
        try:
            pid = int(path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            return
        if (
            any(part.endswith(b"mosquitto") for part in cmdline[:1])
            and str(self.workdir / CONFIG_FILE).encode() in cmdline
        ):
            log.warning("stopping the Mosquitto (pid %d) left by an earlier run", pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        path.unlink(missing_ok=True)

    def _wait_until_ready(self) -> None:
        """Until the administrator logs in: the port is open *and* the plugin is loaded."""
        credentials = self.credentials
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "not started"
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                code = process.returncode if process is not None else None
                raise RuntimeError(
                    f"Mosquitto exited ({code}) at start; its log says:\n{self.log_tail()}"
                )
            try:
                last = login_answer(self.host, self.port, credentials)
            except OSError as exc:
                last = str(exc)
            if last == "Success":
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"Mosquitto on {self.host}:{self.port} not ready in {START_TIMEOUT_S} s ({last}); "
            f"its log says:\n{self.log_tail()}"
        )

    def _watch(self, mosquitto: str) -> None:
        """Start the broker again whenever it dies, until :meth:`stop`."""
        failures = 0
        started = time.monotonic()
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            try:
                process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            if self._stopping.is_set():
                return
            # A broker that ran a while before dying is started again quickly.
            failures = failures + 1 if time.monotonic() - started < 5 else 0
            delay = RESTART_DELAYS_S[min(failures, len(RESTART_DELAYS_S) - 1)]
            log.error(
                "Liens's Mosquitto exited (%s); starting it again in %.1f s. Its log says:\n%s",
                process.returncode,
                delay,
                self.log_tail(10),
            )
            if self._stopping.wait(delay):
                return
            started = time.monotonic()
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._spawn(mosquitto)
                except OSError:
                    log.exception("cannot start Mosquitto again")
                    continue
            self.restarts += 1
            try:
                self._wait_until_ready()
            except RuntimeError:
                log.exception("Mosquitto did not come back")
