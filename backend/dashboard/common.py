"""What every dashboard page shares: the layout's context, links that keep ``?lang=``, QR codes."""

from __future__ import annotations

import gettext
import logging
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend import apply as apply_step
from backend.apply import Applied
from backend.auth.deps import accessible_home_ids, csrf_token_for
from backend.i18n import pick_language, translations
from backend.models import ContactRequest, RequestStatus, Staff, StaffRole
from backend.runtime import Backend
from backend.services.decisions import Consequences
from backend.web import render

log = logging.getLogger(__name__)
_SVG_SIZE = re.compile(r'^<svg width="[^"]*" height="[^"]*"')


def language(request: Request) -> str:
    return pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))


def tr(request: Request) -> gettext.NullTranslations:
    return translations(language(request))


def link(request: Request, path: str, **params: Any) -> str:
    """``path`` with ``params``, keeping an explicit ``?lang=`` so English stays English."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    lang = request.query_params.get("lang")
    if lang:
        query.setdefault("lang", lang)
    return f"{path}?{urlencode(query, doseq=True)}" if query else path


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def see_other(request: Request, path: str, **params: Any) -> Response:
    """After a POST: back to a page (Post/Redirect/Get), or tell htmx to go there."""
    target = link(request, path, **params)
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def pending_count(session: Session, staff: Staff) -> int:
    query = (
        select(func.count())
        .select_from(ContactRequest)
        .where(ContactRequest.status == RequestStatus.PENDING.value)
    )
    home_ids = accessible_home_ids(session, staff)
    if home_ids is not None:
        query = query.where(ContactRequest.home_id.in_(home_ids or {""}))
    return int(session.scalar(query) or 0)


def page(
    request: Request,
    session: Session,
    staff: Staff,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A dashboard page in the staff layout (navigation, CSRF token for forms and htmx)."""
    return render(
        request,
        template,
        status_code=status_code,
        staff=staff,
        is_admin=staff.role == StaffRole.ADMIN.value,
        csrf_token=csrf_token_for(request),
        pending=pending_count(session, staff),
        link=lambda path, **params: link(request, path, **params),
        here=request.url.path,
        **context,
    )


def fragment(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A piece of a page for htmx to swap in."""
    return render(
        request,
        template,
        status_code=status_code,
        csrf_token=csrf_token_for(request),
        link=lambda path, **params: link(request, path, **params),
        **context,
    )


def qr_svg(text: str, label: str) -> Markup:
    """An inline SVG QR code (no image request, nothing leaves the server)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    svg = image.to_string(encoding="unicode")
    opening = f'<svg class="qr" role="img" aria-label="{Markup.escape(label)}"'
    return Markup(_SVG_SIZE.sub(lambda _m: opening, svg, count=1))  # noqa: S704 - our own SVG


def local_time(moment: datetime | None, timezone: str, lang: str) -> str:
    """'12/03 14:05' in the home's time zone; '' for never."""
    if moment is None:
        return ""
    local = moment.astimezone(ZoneInfo(timezone))
    return local.strftime("%d/%m/%Y %H:%M" if lang == "fr" else "%Y-%m-%d %H:%M")


def public_url(backend: Backend) -> str:
    return backend.settings.public_url.rstrip("/")


def actor(staff: Staff) -> str:
    """How the audit log names a member of staff (as the login does: by id, names change)."""
    return f"staff:{staff.id}"


def apply(request: Request, consequences: Consequences) -> Applied:
    """After the commit: carry out what the decision sets in motion (``backend.apply``).

    Every route that writes calls this once, even with nothing to do (``decisions.NOTHING``):
    tests/integration/test_decisions.py checks that each does.
    """
    return apply_step.apply(request.app.state.backend, request.app.state.hub, consequences)


async def _form_lists(request: Request) -> dict[str, list[str]]:
    """Every field of a posted form as a list of strings (checkbox groups, dynamic rows).

    Async so the body is read on the event loop; the route itself stays synchronous and runs in
    the thread pool, where it may call the hub's thread-safe methods.
    """
    form = await request.form()
    lists: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            lists.setdefault(key, []).append(value)
    return lists


FormLists = Annotated[dict[str, list[str]], Depends(_form_lists)]


def actor_name(session: Session, who: str) -> str:
    """'staff:<id>' -> the person's name; other actors (tablet:…, cli:…) as they are."""
    if who.startswith("staff:"):
        staff = session.get(Staff, who[6:])
        if staff is not None:
            return staff.name
    return who
