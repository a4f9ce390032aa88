"""ICE servers for a call: the home's own STUN/TURN (coturn, ``use-auth-secret``), or none.

coturn's REST-API scheme: the user name is ``<expiry unix time>:<identity>`` and the password is
``base64(HMAC-SHA1(secret, user name))``; coturn checks both with the same shared secret, so the
backend hands out credentials that expire on their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from backend.settings import Settings


def ice_servers(
    settings: Settings, identity: str, now: float | None = None
) -> list[dict[str, Any]]:
    urls = [u.strip() for u in settings.turn_urls.split(",") if u.strip()]
    if not urls:
        return []  # host candidates only: enough on one machine or one LAN
    if not settings.turn_secret:
        return (
            [{"urls": [u for u in urls if u.startswith("stun:")]}]
            if any(u.startswith("stun:") for u in urls)
            else []
        )
    expiry = int((now if now is not None else time.time()) + settings.turn_ttl_s)
    username = f"{expiry}:{identity}"
    digest = hmac.new(settings.turn_secret.encode(), username.encode(), hashlib.sha1).digest()
    return [{"urls": urls, "username": username, "credential": base64.b64encode(digest).decode()}]
