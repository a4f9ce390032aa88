"""The embedded MQTT broker: amqtt 0.12 in its own thread, with Liens authentication and ACLs.

A home or a demo runs one process: the backend starts :class:`EmbeddedBroker`, which runs amqtt
on a private asyncio loop in a background thread so that it never competes with the web server's
loop and can be started and stopped from synchronous code (the CLI, tests).

Security rules, the same as Mosquitto's dynamic security setup in production:

- every CONNECT is checked by the backend's ``authenticate(username, password)`` callback
  (anonymous connections are refused);
- ``backend_username`` may publish and subscribe anywhere;
- any other user name is a tablet id, and :func:`kiosk.protocol.tablet_may` decides for publish,
  subscribe, and for every delivery (amqtt's ``RECEIVE`` check), so a tablet never gets another
  tablet's messages even through a session it should not have;
- a tablet's last will must be a topic it may publish to, or the connection is refused (amqtt
  publishes wills without any topic check).

amqtt 0.12 loads plugins from dotted class paths and builds each plugin's ``Config`` dataclass
from plain data, so a callable cannot be passed through its configuration: plugins find their
:class:`EmbeddedBroker` in a module registry by a key that is in their configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from kiosk.protocol import Access, tablet_may

__all__ = ["EmbeddedBroker", "EmbeddedBrokerError"]

log = logging.getLogger(__name__)

# amqtt logs every connection and packet at INFO, and `transitions` (its state machine library)
# logs every state change: keep both to warnings so the backend's log stays readable.
for _name in ("amqtt", "transitions"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
_KICK_TIMEOUT_S = 5.0

_REGISTRY: dict[str, EmbeddedBroker] = {}
_REGISTRY_LOCK = threading.Lock()


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not start (port taken, bad address…); the message says why."""


class EmbeddedBroker:
    """An amqtt broker running in-process on its own thread and asyncio loop.

    It also implements :class:`backend.broker.BrokerAdmin`: registration is a no-op because
    every CONNECT asks ``authenticate`` (which reads the database), and unregistration kicks the
    tablet's live sessions.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        authenticate: Callable[[str, str], bool],
        backend_username: str,
    ) -> None:
        """Prepare a broker listening on ``host:port`` (``port=0`` picks a free port).

        ``authenticate(username, password)`` is called for every CONNECT, from a worker thread
        (it may block, e.g. to query the database and verify a password hash).
        """
        self.host = host
        self.port = port
        self.backend_username = backend_username
        self._authenticate = authenticate
        self._key = uuid.uuid4().hex
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None  # amqtt.broker.Broker, untyped
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive() and self._ready.is_set()

    def start(self) -> None:
        """Start the broker; return once it accepts connections.

        Raise :class:`EmbeddedBrokerError` if it cannot listen (for example the port is taken).
        """
        if self._thread is not None:
            raise EmbeddedBrokerError("the embedded broker is already started")
        with _REGISTRY_LOCK:
            _REGISTRY[self._key] = self
        self._ready.clear()
        self._start_error = None
        self._thread = threading.Thread(
            target=self._run, name=f"liens-amqtt-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            self.stop()
            raise EmbeddedBrokerError(f"the embedded broker did not start in {_START_TIMEOUT_S} s")
        if self._start_error is not None:
            error = self._start_error
            self._thread.join(_STOP_TIMEOUT_S)
            self._thread = None
            self._forget()
            raise EmbeddedBrokerError(
                f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {error}"
            ) from error
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Disconnect every client, close the listener and join the broker's thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():
            log.warning("the embedded MQTT broker's thread did not stop in %s s", _STOP_TIMEOUT_S)
        self._thread = None
        self._loop = None
        self._stop_event = None
        self._forget()
        log.info("embedded MQTT broker stopped")

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _forget(self) -> None:
        with _REGISTRY_LOCK:
            _REGISTRY.pop(self._key, None)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), never lost in the thread
            if not self._ready.is_set():
                self._start_error = exc
                self._ready.set()
            else:
                log.exception("the embedded MQTT broker failed")
        finally:
            try:
                _cancel_all_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _serve(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # Only our plugins: this drops amqtt's defaults, among them anonymous access, the
            # packet logger and the $SYS publisher.
            "plugins": {
                f"{__name__}.LiensAuthPlugin": {"broker_key": self._key},
                f"{__name__}.LiensTopicPlugin": {"broker_key": self._key},
            },
        }
        self._stop_event = asyncio.Event()
        if self.port != 0:
            # amqtt logs a traceback at ERROR before raising: say it clearly, and first.
            _check_bindable(self.host, self.port)
        broker = Broker(config, loop=asyncio.get_running_loop())
        try:
            await broker.start()
        except Exception as exc:
            # amqtt wraps the OSError ("address already in use") in a BrokerError.
            raise EmbeddedBrokerError(str(exc.__cause__ or exc)) from exc
        self._broker = broker
        if self.port == 0:
            server = broker._servers["default"]  # the only way to learn the port picked
            self.port = int(server.instance.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await broker.shutdown()
            self._broker = None

    # -- BrokerAdmin -----------------------------------------------------------------------

    def register_tablet(self, tablet_id: str, password: str) -> None:
        """Nothing to do: ``authenticate`` checks the password stored by the backend."""
        log.debug("embedded broker: tablet %s registered (checked at CONNECT)", tablet_id)

    def unregister_tablet(self, tablet_id: str) -> None:
        """Kick every live session of ``tablet_id``; the backend has already removed it."""
        loop = self._loop
        if not self.running or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._kick(tablet_id), loop)
        try:
            kicked = future.result(_KICK_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            log.warning("embedded broker: kicking tablet %s timed out", tablet_id)
            return
        if kicked:
            log.info("embedded broker: disconnected %d session(s) of %s", kicked, tablet_id)

    async def _kick(self, username: str) -> int:
        broker = self._broker
        if broker is None:
            return 0
        kicked = 0
        for session, handler in list(broker.sessions.values()):
            if session.username != username or session.transitions.state != "connected":
                continue
            # Resolves the session's disconnect waiter as if the socket had dropped: the broker's
            # own client loop then closes the connection (and sends the will, as for any drop).
            await handler.handle_connection_closed()
            kicked += 1
        return kicked

    # -- called by the plugins, on the broker's loop ---------------------------------------

    async def check_connect(self, session: Any) -> bool:
        """Authenticate a CONNECT and check its last will; never raises."""
        username, password = session.username, session.password
        if not username or password is None:
            log.info("embedded broker: refused a connection without credentials")
            return False
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        will_topic = session.will_topic if session.will_flag else None
        if will_topic and not self.may(username, will_topic, Action.PUBLISH):
            log.warning(
                "embedded broker: refused %s, last will on a forbidden topic %r",
                username,
                will_topic,
            )
            return False
        loop = asyncio.get_running_loop()
        try:
            # The callback may block (database, password hashing): keep it off the broker loop.
            ok = await loop.run_in_executor(None, self._authenticate, username, password)
        except Exception:
            log.exception("embedded broker: authenticate(%r) failed", username)
            return False
        if not ok:
            log.info("embedded broker: bad credentials for %r", username)
        return bool(ok)

    def may(self, username: str | None, topic: str, action: Action) -> bool:
        """Whether ``username`` may do ``action`` (publish, subscribe, receive) on ``topic``."""
        if not username:
            return False
        if username == self.backend_username:
            return True
        # Receiving is checked like subscribing, on the concrete topic of each delivery.
        access = Access.PUBLISH if action == Action.PUBLISH else Access.SUBSCRIBE
        return tablet_may(username, topic, access)


def _check_bindable(host: str, port: int) -> None:
    """Raise :class:`EmbeddedBrokerError` when ``host:port`` cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise EmbeddedBrokerError(f"cannot resolve {host!r}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # Same option as asyncio.start_server(reuse_address=True): only a live listener conflicts.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise EmbeddedBrokerError(f"{host}:{port} is not available: {exc.strerror}") from exc


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _lookup(key: str) -> EmbeddedBroker | None:
    with _REGISTRY_LOCK:
        return _REGISTRY.get(key)


class LiensAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt authentication plugin: delegates to the owning :class:`EmbeddedBroker`."""

    @dataclass
    class Config:
        """Plugin configuration, built by amqtt from the broker configuration."""

        broker_key: str = ""

    async def authenticate(self, *, session: Any) -> bool:
        broker = _lookup(self.config.broker_key)
        if broker is None or session is None:
            return False
        return await broker.check_connect(session)


class LiensTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """amqtt topic plugin: the backend may do anything, a tablet only what ``tablet_may`` says."""

    @dataclass
    class Config:
        """Plugin configuration, built by amqtt from the broker configuration."""

        broker_key: str = ""

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        broker = _lookup(self.config.broker_key)
        if broker is None or session is None or topic is None or action is None:
            return False
        allowed = broker.may(session.username, topic, action)
        if not allowed:
            log.info("embedded broker: %s may not %s %r", session.username, action, topic)
        return allowed
