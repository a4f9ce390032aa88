"""Staff passwords and supervision PINs, hashed with argon2id.

The hasher's parameters are argon2-cffi's current recommendation; when they change, a hash made
with older parameters still verifies and is replaced on the next successful login
(:func:`needs_rehash`).
"""

from __future__ import annotations

import re
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.services.errors import ServiceError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte on every try would be a denial of service
PIN_PATTERN = re.compile(r"[0-9]{4,6}")

_hasher = PasswordHasher()  # argon2id


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; a missing or malformed hash never matches."""
    if not password_hash or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash to verify against when the email is unknown, so both answers take as long."""
    return _hasher.hash("liens: no such account")


def burn_time(password: str) -> None:
    """Spend what a real verification costs (unknown email), and throw the answer away."""
    verify_password(dummy_hash(), password)


def check_new_password(password: str) -> None:
    """Refuse a password a person should not be allowed to choose, with a sentence."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServiceError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ServiceError(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")


def hash_pin(pin: str) -> str:
    """A staff supervision PIN (4 to 6 digits), hashed like a password."""
    if not PIN_PATTERN.fullmatch(pin):
        raise ServiceError("A PIN is 4 to 6 digits.")
    return _hasher.hash(pin)


def verify_pin(pin_hash: str, pin: str) -> bool:
    if not PIN_PATTERN.fullmatch(pin):
        return False
    return verify_password(pin_hash, pin)
