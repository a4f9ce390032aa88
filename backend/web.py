"""Server-rendered pages: Jinja2 templates with per-request translations, no CDN."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from backend.i18n import pick_language, translations

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


@lru_cache
def environment(language: str) -> Environment:
    """One Jinja environment per language, with that language's translations installed."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    # newstyle: _("Hello %(name)s", name=...) formats and escapes its arguments.
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    language = pick_language(
        request.query_params.get("lang"), request.headers.get("accept-language")
    )
    # Logged-in staff pages: forms and htmx (hx-headers) carry the session's CSRF token.
    session_row = getattr(request.state, "staff_session", None)
    context.setdefault("csrf_token", session_row.csrf_token if session_row is not None else "")
    html = environment(language).get_template(template).render(lang=language, **context)
    return HTMLResponse(html, status_code=status_code)
