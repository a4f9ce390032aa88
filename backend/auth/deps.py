"""What the dashboard's routes depend on: who is logged in, may they, and did they mean it.

::

    @router.get("/staff/homes/{home_id}")
    def home_page(home_id: str, request: Request, session: SessionDep, staff: CurrentStaff):
        home = home_for(session, staff, home_id)          # 404 unless staff may see it
        return render(request, "...", csrf_token=csrf_token_for(request), ...)

    @router.post("/staff/homes/{home_id}/rename", dependencies=[CsrfChecked])
    def rename(...): ...

A state-changing request carries the session's CSRF token as the form field ``csrf_token`` or
the header ``X-CSRF-Token`` (htmx: ``hx-headers='{"X-CSRF-Token": "..."}'`` on ``<body>``).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from backend.api.deps import SessionDep
from backend.auth import sessions
from backend.models import Home, Staff, StaffRole, StaffSession

CSRF_REFUSED = "This form has expired or did not come from Liens. Reload the page and try again."
NOT_ALLOWED = "This page is reserved for the organisation's administrators."
NOT_FOUND = "This page does not exist, or it is not one of your homes."


class LoginRequired(Exception):
    """No valid staff session. The app answers 303 to the login page (HTML) or 401 (JSON, htmx)."""


def get_staff_session(request: Request) -> StaffSession | None:
    """The session :func:`current_staff` found for this request, if it ran."""
    row: StaffSession | None = getattr(request.state, "staff_session", None)
    return row


def current_staff(request: Request, session: SessionDep) -> Staff:
    """The active staff member behind the session cookie, or :class:`LoginRequired`."""
    token = request.cookies.get(sessions.COOKIE_NAME, "")
    row = sessions.lookup(session=session, token=token)
    if row is None:
        raise LoginRequired()
    staff = row.staff
    if not staff.active:
        session.delete(row)
        raise LoginRequired()
    request.state.staff_session = row
    request.state.staff = staff
    return staff


CurrentStaff = Annotated[Staff, Depends(current_staff)]


def admin_staff(staff: CurrentStaff) -> Staff:
    """The current staff member if an administrator; 403 otherwise."""
    if staff.role != StaffRole.ADMIN.value:
        raise HTTPException(status_code=403, detail=NOT_ALLOWED)
    return staff


AdminStaff = Annotated[Staff, Depends(admin_staff)]


async def verify_csrf(request: Request, staff: CurrentStaff) -> None:
    """403 unless the request carries this session's CSRF token (header or form field).

    Async so that reading the form does not block; Starlette caches the parsed form, so the
    route's own ``Form(...)`` parameters still see it.
    """
    row = get_staff_session(request)
    expected = row.csrf_token if row is not None else ""
    given = request.headers.get(sessions.CSRF_HEADER, "")
    if not given:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(sessions.CSRF_FIELD)
            given = value if isinstance(value, str) else ""
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status_code=403, detail=CSRF_REFUSED)


CsrfChecked = Depends(verify_csrf)


def csrf_token_for(request: Request) -> str:
    """The current session's CSRF token, for forms and ``hx-headers`` ('' when logged out)."""
    row = get_staff_session(request)
    return row.csrf_token if row is not None else ""


def accessible_home_ids(session: Session, staff: Staff) -> set[str] | None:
    """The homes ``staff`` may see; None means every home (an administrator)."""
    if staff.role == StaffRole.ADMIN.value:
        return None
    return {home.id for home in staff.homes}


def can_access_home(session: Session, staff: Staff, home_id: str | None) -> bool:
    allowed = accessible_home_ids(session, staff)
    return allowed is None or (home_id is not None and home_id in allowed)


def check_home_access(session: Session, staff: Staff, home_id: str | None) -> None:
    """404 unless ``staff`` may see ``home_id``: for an object already loaded (its ``home_id``)."""
    if not can_access_home(session, staff, home_id):
        raise HTTPException(status_code=404, detail=NOT_FOUND)


def home_for(session: Session, staff: Staff, home_id: str) -> Home:
    """The home, or 404 when it is missing *or* not one of the staff's (no existence leak)."""
    home = session.get(Home, home_id)
    if home is None or not can_access_home(session, staff, home.id):
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return home
