"""The login page, logout, and the answer to a request that needs a login.

Login is rate limited twice: per account (5 failures lock it for 15 minutes, in the database, so
every replica agrees) and per client address (20 failures in 10 minutes, in memory, answered
with 429). An unknown email is verified against a dummy hash and counted like an account, so
neither the message nor the timing tells whether an address has an account.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import func, select, update

from backend.api.deps import BackendDep, SessionDep
from backend.api.routes.enrolment import FailureLimiter
from backend.auth import passwords, sessions
from backend.auth.deps import CsrfChecked, LoginRequired
from backend.i18n import pick_language, translations
from backend.models import Staff, utcnow
from backend.services import audit
from backend.settings import Settings
from backend.web import render

log = logging.getLogger(__name__)
router = APIRouter(tags=["staff login"])

LOGIN_PATH = "/staff/login"
AFTER_LOGIN = "/staff/"
MAX_ACCOUNT_FAILURES = 5
ACCOUNT_LOCK = timedelta(minutes=15)
MAX_ADDRESS_FAILURES = 20
ADDRESS_WINDOW_S = 600.0
LOGIN_CSRF_MAX_AGE_S = 12 * 3600

BAD_CREDENTIALS = "Wrong email address or password."
ACCOUNT_LOCKED = "Too many attempts: try again in 15 minutes."
ADDRESS_BLOCKED = "Too many attempts from this connection: try again in 10 minutes."
LOGIN_CSRF_REFUSED = "This form has expired. It has been reloaded: please log in again."
LOGIN_REQUIRED = "Your session has ended: please log in again."


def _limiters(request: Request) -> tuple[FailureLimiter, FailureLimiter]:
    """(per client address, per unknown email), one pair per app."""
    state = request.app.state
    if not hasattr(state, "login_limiters"):
        state.login_limiters = (
            FailureLimiter(MAX_ADDRESS_FAILURES, ADDRESS_WINDOW_S),
            FailureLimiter(MAX_ACCOUNT_FAILURES, ACCOUNT_LOCK.total_seconds()),
        )
    limiters: tuple[FailureLimiter, FailureLimiter] = state.login_limiters
    return limiters


def _gettext(request: Request, message: str) -> str:
    language = pick_language(
        request.query_params.get("lang"), request.headers.get("accept-language")
    )
    return translations(language).gettext(message)


def safe_next(value: str | None) -> str:
    """A path on this site to go to after login; anything else (another site) is dropped."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
        or value.startswith(LOGIN_PATH)
    ):
        return AFTER_LOGIN
    return value


def _login_page(
    request: Request,
    settings: Settings,
    *,
    next_path: str,
    email: str = "",
    error: str = "",
    status_code: int = 200,
) -> Response:
    token = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    if not (20 <= len(token) <= 100):
        token = secrets.token_urlsafe(32)
    response = render(
        request,
        "staff/login.html",
        status_code=status_code,
        csrf_token=token,
        next_path=next_path,
        email=email,
        error=error,
    )
    response.set_cookie(
        sessions.LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE_S,
        path=LOGIN_PATH,
        secure=sessions.cookie_secure(request, settings),
        httponly=True,
        samesite="lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(LOGIN_PATH, include_in_schema=False)
def login_form(
    request: Request, session: SessionDep, backend: BackendDep, next: str = ""
) -> Response:
    next_path = safe_next(next)
    token = request.cookies.get(sessions.COOKIE_NAME, "")
    row = sessions.lookup(session=session, token=token) if token else None
    if row is not None and row.staff.active:
        return RedirectResponse(next_path, status_code=303)
    return _login_page(request, backend.settings, next_path=next_path)


@router.post(LOGIN_PATH, include_in_schema=False)
def login(
    request: Request,
    session: SessionDep,
    backend: BackendDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=passwords.MAX_PASSWORD_LENGTH)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    settings = backend.settings
    next_path = safe_next(next)
    email = email.strip().lower()
    by_address, by_unknown_email = _limiters(request)
    client = request.client.host if request.client else "unknown"

    def page(message: str, status_code: int) -> Response:
        return _login_page(
            request,
            settings,
            next_path=next_path,
            email=email,
            error=_gettext(request, message),
            status_code=status_code,
        )

    if by_address.blocked(client):
        return page(ADDRESS_BLOCKED, 429)
    expected = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf_token.encode(), expected.encode()):
        return page(LOGIN_CSRF_REFUSED, 403)

    staff = session.scalar(select(Staff).where(func.lower(Staff.email) == email)) if email else None
    if staff is not None and staff.active:
        ok = passwords.verify_password(staff.password_hash, password)
    else:
        staff = None
        passwords.burn_time(password)
        ok = False

    now = utcnow()
    if staff is not None and staff.locked_until is not None and staff.locked_until > now:
        by_address.note_failure(client)
        return page(ACCOUNT_LOCKED, 429)
    if staff is None and email and by_unknown_email.blocked(email):
        by_address.note_failure(client)
        return page(ACCOUNT_LOCKED, 429)

    if not ok or staff is None:
        by_address.note_failure(client)
        if staff is None:
            if email:
                by_unknown_email.note_failure(email)
            locked = bool(email) and by_unknown_email.blocked(email)
        else:
            # Atomic, so that parallel guesses cannot all read the same count.
            session.execute(
                update(Staff)
                .where(Staff.id == staff.id)
                .values(failed_logins=Staff.failed_logins + 1)
            )
            session.refresh(staff, ["failed_logins"])
            locked = staff.failed_logins >= MAX_ACCOUNT_FAILURES
            if locked:
                staff.failed_logins = 0
                staff.locked_until = now + ACCOUNT_LOCK
                audit.record(
                    session=session,
                    actor=f"address:{client}",
                    action="staff.locked",
                    target_type="staff",
                    target_id=staff.id,
                    details={"minutes": int(ACCOUNT_LOCK.total_seconds() // 60)},
                )
                log.warning("staff account %s locked after repeated failures", staff.id)
        # Committed before answering: FastAPI closes the session only after the response.
        session.commit()
        if locked:
            return page(ACCOUNT_LOCKED, 429)
        return page(BAD_CREDENTIALS, 401)

    staff.failed_logins = 0
    staff.locked_until = None
    staff.last_login_at = now
    if passwords.needs_rehash(staff.password_hash):
        staff.password_hash = passwords.hash_password(password)
    # A session that existed before the login is never reused (session fixation).
    sessions.end_session(session=session, token=request.cookies.get(sessions.COOKIE_NAME, ""))
    new = sessions.create_session(session=session, staff=staff, now=now)
    audit.record(
        session=session,
        actor=f"staff:{staff.id}",
        action="staff.login",
        target_type="staff",
        target_id=staff.id,
    )
    # Committed before the redirect: the browser's next request must find the session.
    session.commit()
    response = RedirectResponse(next_path, status_code=303)
    sessions.set_session_cookie(response, request, settings, new.token)
    response.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/staff/logout", include_in_schema=False, dependencies=[CsrfChecked])
def logout(request: Request, session: SessionDep, backend: BackendDep) -> Response:
    sessions.end_session(session=session, token=request.cookies.get(sessions.COOKIE_NAME, ""))
    session.commit()
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    sessions.clear_session_cookie(response, request, backend.settings)
    return response


async def login_required_handler(request: Request, exc: Exception) -> Response:
    """HTML navigation: 303 to the login page (back here afterwards). JSON or htmx: 401."""
    htmx = request.headers.get("hx-request") == "true"
    accept = request.headers.get("accept", "")
    if request.method == "GET" and request.url.query:
        here = f"{request.url.path}?{request.url.query}"
    else:
        here = request.url.path
    if htmx:
        # Back to the page that made the htmx request, not to the fragment's URL.
        current = urlsplit(request.headers.get("hx-current-url", ""))
        here = current.path + (f"?{current.query}" if current.query else "")
    target = LOGIN_PATH
    if here and (htmx or request.method in ("GET", "HEAD")):
        target += "?next=" + quote(here, safe="/")
    if "text/html" in accept and not htmx:
        return RedirectResponse(target, status_code=303)
    response = JSONResponse({"detail": _gettext(request, LOGIN_REQUIRED)}, status_code=401)
    if htmx:
        # htmx follows HX-Redirect whatever the status: the page goes to the login form.
        response.headers["HX-Redirect"] = target
    return response


__all__ = ["LoginRequired", "login_required_handler", "router"]
