"""Server-side staff sessions behind an HttpOnly cookie.

The cookie holds a random token; the database holds only its SHA-256 (``StaffSession.id``), so
a copy of the database does not let anyone log in. A session lasts 12 hours after the last
request (sliding) and never more than 7 days after the login.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import delete
from sqlalchemy.orm import Session

from backend.models import Staff, StaffSession, utcnow
from backend.settings import Settings

COOKIE_NAME = "liens_staff"
# The pre-session cookie of the login form (double-submit): blocks login CSRF.
LOGIN_CSRF_COOKIE = "liens_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

IDLE_TIMEOUT = timedelta(hours=12)
ABSOLUTE_TIMEOUT = timedelta(days=7)
# last_seen_at is written at most this often: one write per click would be wasteful.
TOUCH_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie; never stored
    row: StaffSession


def create_session(*, session: Session, staff: Staff, now: datetime | None = None) -> NewSession:
    """A fresh session for ``staff`` (also drops that person's expired sessions)."""
    now = now or utcnow()
    session.execute(
        delete(StaffSession).where(
            StaffSession.staff_id == staff.id, StaffSession.expires_at <= now
        )
    )
    token = secrets.token_urlsafe(32)
    row = StaffSession(
        id=token_hash(token),
        staff_id=staff.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + IDLE_TIMEOUT,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    return NewSession(token=token, row=row)


def lookup(*, session: Session, token: str, now: datetime | None = None) -> StaffSession | None:
    """The live session behind ``token``, its expiry slid forward; None when unknown or over."""
    if not token or len(token) > 200:
        return None
    row = session.get(StaffSession, token_hash(token))
    if row is None:
        return None
    now = now or utcnow()
    if now >= row.expires_at or now >= row.created_at + ABSOLUTE_TIMEOUT:
        session.delete(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = min(now + IDLE_TIMEOUT, row.created_at + ABSOLUTE_TIMEOUT)
    return row


def end_session(*, session: Session, token: str) -> None:
    row = session.get(StaffSession, token_hash(token)) if token else None
    if row is not None:
        session.delete(row)


def end_all_sessions(*, session: Session, staff_id: str) -> None:
    """Log a person out everywhere (account disabled, password changed)."""
    session.execute(delete(StaffSession).where(StaffSession.staff_id == staff_id))


def cookie_secure(request: Request, settings: Settings) -> bool:
    """``Secure`` always, except in development over plain http (a developer's laptop)."""
    if settings.environment != "development":
        return True
    return request.url.scheme == "https"


def set_session_cookie(
    response: Response, request: Request, settings: Settings, token: str
) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
        path="/",
        secure=cookie_secure(request, settings),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        secure=cookie_secure(request, settings),
        httponly=True,
        samesite="lax",
    )
