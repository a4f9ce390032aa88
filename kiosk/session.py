"""Who is using the tablet: the open resident, the inactivity timer, youth PINs and lock-outs.

Pure (no Kivy, no I/O): the picker and PIN screens feed it touches and typed codes, the app asks
it where to go. Time comes from a ``clock`` callable (seconds, monotonic by default) so tests
drive it with a fake clock.

Rules:

- A tablet serving one senior opens their home at once; several residents, or any youth, go
  through the picker (a lone youth still types their PIN, the picker only shows them).
- A youth opens their home with their own 4-digit PIN, checked offline against the argon2 hash
  the backend put in the config (``residents[].pin_hash``; youth only). A youth without a PIN
  opens only on a tablet that serves nobody else (there is no other child to hide from);
  otherwise "ask an educator".
- ``MAX_FAILURES`` wrong PINs in a row lock that resident for ``LOCKOUT_SECONDS``; a right PIN
  resets the count; staff clear a lock-out with :meth:`Session.reset_lock` (the tablet's staff
  screen, or the backend's ``reset_pin_lock`` command). Lock-outs live in memory: a restart of
  the kiosk (which a child cannot cause: see the lockdown) clears them.
- After ``idle_seconds`` without a touch, a call or an activity, the session closes.

A PIN is never logged nor kept: only the number of failures is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PIN_LENGTH = 4
MAX_FAILURES = 5
LOCKOUT_SECONDS = 15 * 60.0
IDLE_SECONDS = 120.0


def verify_pin(pin_hash: str, pin: str) -> bool:
    """Whether ``pin`` matches an argon2 ``pin_hash``; a missing or damaged hash never matches."""
    if not pin_hash or len(pin) != PIN_LENGTH or not pin.isdigit():
        return False
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return PasswordHasher().verify(pin_hash, pin)
    except (VerificationError, InvalidHashError, ValueError):
        return False


@dataclass(frozen=True)
class PinCheck:
    """What came of a typed PIN: ``result`` is "ok", "wrong", "locked" or "no_pin"."""

    result: str
    attempts_left: int = MAX_FAILURES
    locked_seconds: float = 0.0  # how long the lock-out still lasts ("locked")


@dataclass
class _Failures:
    count: int = 0
    locked_until: float | None = None


@dataclass
class Session:
    """The tablet's current user and the youth PIN lock-outs."""

    idle_seconds: float = IDLE_SECONDS
    max_failures: int = MAX_FAILURES
    lockout_seconds: float = LOCKOUT_SECONDS
    clock: Callable[[], float] = time.monotonic
    verify: Callable[[str, str], bool] = verify_pin
    resident_id: str | None = None
    _last_activity: float = 0.0
    _failures: dict[str, _Failures] = field(default_factory=dict)

    # --- who -----------------------------------------------------------------------------------

    def open(self, resident_id: str) -> None:
        """``resident_id``'s home is now on screen."""
        self.resident_id = resident_id
        self.touch()

    def close(self) -> None:
        """Back to "nobody": the picker (or the lone resident's PIN) is shown."""
        self.resident_id = None

    # --- inactivity ----------------------------------------------------------------------------

    def touch(self) -> None:
        """A touch, a call or an activity: the inactivity timer starts again."""
        self._last_activity = self.clock()

    def idle_for(self) -> float:
        return self.clock() - self._last_activity

    def idle_expired(self) -> bool:
        """True when a home is open and nobody touched the tablet for ``idle_seconds``."""
        return self.resident_id is not None and self.idle_for() >= self.idle_seconds

    # --- PINs ----------------------------------------------------------------------------------

    def locked_seconds(self, resident_id: str) -> float:
        """How long ``resident_id`` stays locked out (0 when not locked)."""
        failures = self._failures.get(resident_id)
        if failures is None or failures.locked_until is None:
            return 0.0
        left = failures.locked_until - self.clock()
        if left <= 0:
            # The lock-out is over: a fresh set of tries.
            self._failures.pop(resident_id, None)
            return 0.0
        return left

    def attempts_left(self, resident_id: str) -> int:
        if self.locked_seconds(resident_id) > 0:
            return 0
        failures = self._failures.get(resident_id)
        return self.max_failures - (failures.count if failures else 0)

    def check_pin(self, resident_id: str, pin_hash: str, pin: str) -> PinCheck:
        """Check ``pin`` for ``resident_id``; opens the session on success."""
        locked = self.locked_seconds(resident_id)
        if locked > 0:
            return PinCheck("locked", 0, locked)
        if not pin_hash:
            return PinCheck("no_pin", self.attempts_left(resident_id))
        return self.pin_result(resident_id, self.verify(pin_hash, pin))

    def pin_result(self, resident_id: str, matched: bool) -> PinCheck:
        """Count a PIN checked elsewhere (the UI verifies off its main thread: argon2 is slow)."""
        locked = self.locked_seconds(resident_id)
        if locked > 0:
            return PinCheck("locked", 0, locked)
        if matched:
            self._failures.pop(resident_id, None)
            self.open(resident_id)
            return PinCheck("ok", self.max_failures)
        failures = self._failures.setdefault(resident_id, _Failures())
        failures.count += 1
        if failures.count >= self.max_failures:
            failures.locked_until = self.clock() + self.lockout_seconds
            return PinCheck("locked", 0, self.lockout_seconds)
        return PinCheck("wrong", self.max_failures - failures.count)

    def reset_lock(self, resident_id: str | None = None) -> None:
        """Staff clear the failures of one resident (or of everyone)."""
        if resident_id is None:
            self._failures.clear()
        else:
            self._failures.pop(resident_id, None)


def needs_pin(resident: dict[str, Any]) -> bool:
    """A youth types their PIN; a senior opens with one tap."""
    return str(resident.get("kind", "senior")) == "youth"


def may_open_without_pin(resident: dict[str, Any], residents: list[dict[str, Any]]) -> bool:
    """A senior always; a youth without a PIN only when the tablet serves nobody else."""
    if not needs_pin(resident):
        return True
    return not resident.get("pin_hash") and len(residents) == 1


def skips_picker(residents: list[dict[str, Any]]) -> bool:
    """A tablet serving one resident shows no picker (a lone youth still types their PIN)."""
    return len(residents) == 1
