"""Who may open the staff screen: a staff PIN checked offline against the tablet's config.

The backend sends ``staff_pins`` in the tablet's configuration (``[{"staff_id", "name",
"pin_hash"}]``, argon2 hashes of the staff assigned to the tablet's home, and of the admins), so
the way out of the kiosk works with no network. After ``MAX_FAILURES`` wrong PINs in a row the
keypad is locked for ``LOCK_SECONDS``. No Kivy here: the logic is tested without a window.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

MAX_FAILURES = 5
LOCK_SECONDS = 300.0
PIN_PATTERN = re.compile(r"[0-9]{4,6}")


def staff_pins(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The usable ``staff_pins`` entries of a tablet configuration."""
    entries = (config or {}).get("staff_pins") or []
    return [e for e in entries if isinstance(e, dict) and e.get("pin_hash")]


def match_pin(pin: str, entries: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The staff entry whose argon2 ``pin_hash`` matches ``pin``, or None (slow: a thread)."""
    if not PIN_PATTERN.fullmatch(pin):
        return None
    try:
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError
    except ImportError:  # the tablet was installed without argon2-cffi: nobody can get in
        log.error("argon2-cffi is not installed: staff PINs cannot be checked")
        return None
    hasher = PasswordHasher()
    for entry in entries:
        try:
            if hasher.verify(str(entry["pin_hash"]), pin):
                return entry
        except (VerificationError, InvalidHashError, ValueError):
            continue
    return None


class StaffAccess:
    """Counts wrong PINs and locks the keypad for a while after too many."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        lock_seconds: float = LOCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds
        self._clock = clock
        self.failures = 0
        self._locked_until = 0.0

    def locked_for(self) -> float:
        """Seconds left before the keypad accepts a PIN again (0 when it does)."""
        return max(0.0, self._locked_until - self._clock())

    @property
    def tries_left(self) -> int:
        return max(0, self.max_failures - self.failures)

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.max_failures:
            self._locked_until = self._clock() + self.lock_seconds
            self.failures = 0
