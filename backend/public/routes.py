"""The home's public request page: a relative asks to be linked with a resident.

``GET/POST /h/{slug}/demande`` (French by default, ``?lang=en``). The answer never depends on
whether the named resident lives there: the request is stored as given and staff decide. Spam is
kept out by a honeypot field (a filled one gets the usual confirmation and stores nothing) and a
per-address limit of ``RATE_LIMIT`` stored requests per ``RATE_WINDOW_S``, in memory per app.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from backend.api.deps import SessionDep
from backend.i18n import pick_language, translations
from backend.models import Home
from backend.services import requests as request_service
from backend.web import render

router = APIRouter(tags=["public"])

RATE_LIMIT = 5
RATE_WINDOW_S = 3600.0
HONEYPOT = "website"  # hidden from people; bots fill every field they find
FIELDS = ("requester_name", "relation", "resident_name", "message", "email", "phone")
MAX_FIELD = 4000  # anything longer is cut before validation (which then refuses it)


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds for each key (a client address)."""

    def __init__(self, limit: int = RATE_LIMIT, window: float = RATE_WINDOW_S) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        return hits

    def allowed(self, key: str) -> bool:
        with self._lock:
            now = time.monotonic()
            allowed = len(self._recent(key, now)) < self.limit
            # Forget idle addresses so the table does not grow without end.
            for other in [k for k, v in self._hits.items() if not v]:
                del self._hits[other]
            return allowed

    def hit(self, key: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(key, now).append(now)


def limiter(request: Request) -> RateLimiter:
    """The app's limiter (one per app, created on first use)."""
    state = request.app.state
    found = getattr(state, "request_page_limiter", None)
    if found is None:
        found = state.request_page_limiter = RateLimiter()
    return found


def _client_key(request: Request) -> str:
    # The direct peer: behind the TLS proxy, uvicorn's --proxy-headers makes this the client.
    return request.client.host if request.client else "unknown"


def _home(session: SessionDep, slug: str) -> Home | None:
    if len(slug) > 64:
        return None
    return session.scalars(select(Home).where(Home.slug == slug)).one_or_none()


def _lang_query(request: Request) -> str:
    lang = request.query_params.get("lang")
    return f"?lang={lang}" if lang in ("fr", "en") else ""


def _not_found(request: Request) -> HTMLResponse:
    t = translations(
        pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))
    )
    return render(
        request,
        "message.html",
        status_code=404,
        title=t.gettext("This page does not exist"),
        message=t.gettext(
            "There is no request page at this address. Check the link the home gave you."
        ),
    )


def _form_page(
    request: Request,
    home: Home,
    *,
    values: dict[str, str] | None = None,
    problems: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "public/request.html",
        status_code=status_code,
        home=home,
        values=values or {},
        problems=problems or [],
        action=f"/h/{home.slug}/demande{_lang_query(request)}",
        honeypot=HONEYPOT,
    )


def _sent_page(request: Request, home: Home) -> HTMLResponse:
    return render(request, "public/request_sent.html", home=home)


@router.get("/h/{slug}/demande", response_class=HTMLResponse)
def request_form(slug: str, request: Request, session: SessionDep) -> HTMLResponse:
    home = _home(session, slug)
    if home is None:
        return _not_found(request)
    return _form_page(request, home)


@router.post("/h/{slug}/demande", response_class=HTMLResponse)
async def request_submit(slug: str, request: Request, session: SessionDep) -> HTMLResponse:
    home = _home(session, slug)
    if home is None:
        return _not_found(request)
    form = await request.form()
    values: dict[str, Any] = {}
    for name in (*FIELDS, HONEYPOT):
        value = form.get(name)
        values[name] = value[:MAX_FIELD] if isinstance(value, str) else ""
    rates, key = limiter(request), _client_key(request)
    if not rates.allowed(key):
        t = translations(
            pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))
        )
        return render(
            request,
            "message.html",
            status_code=429,
            title=t.gettext("Too many requests"),
            message=t.gettext(
                "Several requests have been sent from here in the last hour. "
                "Please try again later, or call the home."
            ),
        )
    if values[HONEYPOT].strip():
        # A bot: the usual answer, nothing stored, and it counts towards the limit.
        rates.hit(key)
        return _sent_page(request, home)
    try:
        request_service.create_from_relative(
            session=session,
            home_slug=slug,
            requester_name=values["requester_name"],
            relation=values["relation"],
            resident_name_given=values["resident_name"],
            message=values["message"],
            email=values["email"],
            phone=values["phone"],
        )
    except request_service.RequestInvalid as exc:
        session.rollback()
        return _form_page(request, home, values=values, problems=exc.problems, status_code=400)
    session.commit()  # stored before the relative is told so
    rates.hit(key)
    return _sent_page(request, home)
