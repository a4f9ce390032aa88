"""The MQTT broker side of the backend: per-tablet credentials and topic ACLs.

Mosquitto 2 with the dynamic security plugin is the only broker: Liens's own, started and
supervised by the backend (:class:`backend.broker.mosquitto.SupervisedMosquitto`, the default), or
a shared one (``LIENS_MQTT_URL``). Either way :class:`backend.broker.dynsec.DynsecAdmin` gives
every tablet its own account, bound to its client id, and a role allowing only its own
``liens/v1/tablets/{tid}/…`` topics (built from :data:`kiosk.protocol.TABLET_PUBLISHES` and
:data:`kiosk.protocol.TABLET_SUBSCRIBES`).

:class:`BrokerAdmin` is what the rest of the backend needs to know of it.
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
