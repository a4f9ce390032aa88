"""Privacy in the dashboard, and the public privacy page.

- ``GET /confidentialite[?home=<slug or id>]`` — public: what Liens stores, where, for how
  long (the home's own retention when one is named), what it never stores, who sees what, how
  to ask for an export or an erasure.
- ``POST /staff/residents/{id}/export`` — administrators: everything about a resident, one ZIP.
- ``GET /staff/residents/{id}/erase`` — administrators: what erasing would remove, to confirm;
  ``POST`` the same path erases (the tablets drop the resident at once), then
  ``GET /staff/homes/{home}/erased?entry=…`` says what was done (by counts: the person is gone).
- ``POST /staff/residents/{id}/reset-pin`` — staff of the home: a child's PIN lock-out is cleared
  on every tablet showing them (the tablet's ``reset_pin_lock`` command).

The buttons live in ``staff/_resident_privacy.html``, included by the resident's page.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import or_, select
from starlette.background import BackgroundTask

from backend.api.deps import BackendDep, SessionDep
from backend.auth.deps import (
    NOT_FOUND,
    AdminStaff,
    CsrfChecked,
    CurrentStaff,
    check_home_access,
    home_for,
)
from backend.dashboard.common import (
    actor,
    apply,
    fragment,
    is_htmx,
    page,
    see_other,
    tr,
)
from backend.models import AuditEntry, Home, Resident, ResidentKind
from backend.services import audit, decisions, subject
from backend.services import tablets as tablet_service
from backend.services.retention import MAX_DAYS, MIN_DAYS
from backend.web import render

log = logging.getLogger(__name__)
router = APIRouter()

DEFAULT_RETENTION_DAYS = 90
NOT_A_CHILD = "Only a child's profile has a PIN on the tablet."
NOT_CONFIRMED = "Tick the box to confirm that you understand this cannot be undone."


def _resident(session: SessionDep, staff: CurrentStaff, resident_id: str) -> Resident:
    """The resident, or 404 when missing or not in one of the staff's homes."""
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    check_home_access(session, staff, resident.home_id)
    return resident


# -- the public page ------------------------------------------------------------------------------


@router.get("/confidentialite", response_class=HTMLResponse)
def privacy_page(request: Request, session: SessionDep) -> HTMLResponse:
    wanted = (request.query_params.get("home") or "").strip()[:64]
    home = None
    if wanted:
        home = session.scalar(select(Home).where(or_(Home.slug == wanted, Home.id == wanted)))
    return render(
        request,
        "privacy.html",
        home=home,
        retention_days=home.retention_days if home is not None else DEFAULT_RETENTION_DAYS,
        min_days=MIN_DAYS,
        max_days=MAX_DAYS,
        unknown_home=bool(wanted) and home is None,
    )


# -- export ---------------------------------------------------------------------------------------


@router.post("/staff/residents/{resident_id}/export", dependencies=[CsrfChecked])
def export_resident(
    resident_id: str, session: SessionDep, staff: AdminStaff, backend: BackendDep
) -> Response:
    resident = _resident(session, staff, resident_id)
    # A temporary file, streamed then deleted: a resident's photos may weigh hundreds of MB.
    folder = backend.settings.data_dir / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix="export-", suffix=".zip")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            export = subject.export_resident(
                session=session, settings=backend.settings, resident_id=resident.id, out=out
            )
        # Who took a copy of a person's data, and when: the audit log keeps it.
        audit.record(
            session=session,
            actor=actor(staff),
            action="resident.export",
            target_type="resident",
            target_id=resident.id,
            home_id=resident.home_id,
            details={"bytes": export.size},
        )
        session.commit()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=export.filename,
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


# -- erasure --------------------------------------------------------------------------------------


@router.get("/staff/residents/{resident_id}/erase", response_class=HTMLResponse)
def erase_confirm(
    resident_id: str, request: Request, session: SessionDep, staff: AdminStaff
) -> HTMLResponse:
    resident = _resident(session, staff, resident_id)
    return page(
        request,
        session,
        staff,
        "staff/erase_confirm.html",
        resident=resident,
        home=resident.home,
        preview=subject.preview_erasure(session, resident),
        error="",
    )


@router.post("/staff/residents/{resident_id}/erase", dependencies=[CsrfChecked])
def erase(
    resident_id: str,
    request: Request,
    session: SessionDep,
    staff: AdminStaff,
    backend: BackendDep,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    resident = _resident(session, staff, resident_id)
    if confirm != "yes":
        return page(
            request,
            session,
            staff,
            "staff/erase_confirm.html",
            status_code=400,
            resident=resident,
            home=resident.home,
            preview=subject.preview_erasure(session, resident),
            error=tr(request).gettext(NOT_CONFIRMED),
        )
    # A call under way ends first (its log row is written, then erased with the rest).
    apply(request, decisions.end_calls(resident_id=resident.id))
    erased = subject.erase_resident(
        session=session, settings=backend.settings, resident_id=resident.id, by=actor(staff)
    )
    session.commit()
    apply(request, erased.consequences)
    try:
        subject.remove_files(backend.db, backend.settings, erased)
    except OSError:
        log.exception("files of erased resident %s not all removed", erased.resident_id)
    return see_other(request, f"/staff/homes/{erased.home_id}/erased", entry=erased.audit_entry_id)


@router.get("/staff/homes/{home_id}/erased", response_class=HTMLResponse)
def erased_page(
    home_id: str, request: Request, session: SessionDep, staff: AdminStaff
) -> HTMLResponse:
    """What an erasure just did (``?entry=`` its audit entry), by counts: the person is gone."""
    home = home_for(session, staff, home_id)
    entry = None
    wanted = request.query_params.get("entry", "")
    if wanted.isdigit():
        entry = session.get(AuditEntry, int(wanted))
    if entry is not None and (entry.action != "resident.erase" or entry.home_id != home.id):
        entry = None
    return page(
        request,
        session,
        staff,
        "staff/erase_done.html",
        entry=entry,
        home=home,
        deleted=dict(entry.details.get("deleted") or {}) if entry is not None else {},
    )


# -- a child's PIN lock-out -----------------------------------------------------------------------


@router.post("/staff/residents/{resident_id}/reset-pin", dependencies=[CsrfChecked])
def reset_pin(
    resident_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
) -> Response:
    resident = _resident(session, staff, resident_id)
    t = tr(request)
    if resident.kind != ResidentKind.YOUTH.value:
        raise HTTPException(status_code=400, detail=t.gettext(NOT_A_CHILD))
    tablet_ids = tablet_service.tablets_serving(session, resident.id)
    audit.record(
        session=session,
        actor=actor(staff),
        action="resident.pin_lock_reset",
        target_type="resident",
        target_id=resident.id,
        home_id=resident.home_id,
        details={"tablets": tablet_ids},
    )
    session.commit()
    applied = apply(
        request, decisions.command(tablet_ids, "reset_pin_lock", resident_id=resident.id)
    )
    sent = applied.commands_sent
    missed = [tid for tid in tablet_ids if tid not in sent]
    if is_htmx(request):
        return fragment(
            request,
            "staff/_pin_reset_result.html",
            resident=resident,
            sent=len(sent),
            missed=len(missed),
        )
    return see_other(request, f"/staff/residents/{resident.id}")
