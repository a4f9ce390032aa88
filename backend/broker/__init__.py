"""The MQTT broker side of the backend: per-tablet credentials and topic ACLs.

Every tablet has its own broker user name (its tablet id) and password, and may only read and
write its own ``liens/v1/tablets/{tid}/…`` topics (see :func:`kiosk.protocol.tablet_may`). Two
brokers enforce that rule:

- :class:`backend.broker.embedded.EmbeddedBroker`, an in-process amqtt broker (the default, for a
  single home or a demo), which asks the backend for every CONNECT and applies ``tablet_may``;
- Mosquitto 2 with the dynamic security plugin (production), driven by
  :class:`backend.broker.dynsec.DynsecAdmin`, which creates one client and one role per tablet.

Both implement :class:`BrokerAdmin`, the only thing the rest of the backend needs to know.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["BrokerAdmin", "BrokerAdminError"]


class BrokerAdminError(RuntimeError):
    """A broker refused, or did not answer, an administration request; the message says why."""


@runtime_checkable
class BrokerAdmin(Protocol):
    """What the backend asks of a broker when tablets are enrolled or removed."""

    def register_tablet(self, tablet_id: str, password: str) -> None:
        """Let ``tablet_id`` connect with ``password`` and use its own topics.

        Idempotent: registering an existing tablet again only changes its password.
        """
        ...

    def unregister_tablet(self, tablet_id: str) -> None:
        """Remove ``tablet_id``'s access, and kick its live session where the broker allows.

        Idempotent: unregistering an unknown tablet is not an error.
        """
        ...
