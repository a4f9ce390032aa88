"""The photo moderation queue: photos from relatives, waiting for staff before any tablet.

Youth residents' photos always wait here; seniors' when their home asks for it
(``Home.moderate_senior_photos``). Approving puts the photo in the index of the tablets serving
the resident at once; refusing deletes its files (the relative sees that it was not accepted).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.api.deps import BackendDep, SessionDep
from backend.auth.deps import (
    NOT_FOUND,
    CsrfChecked,
    CurrentStaff,
    accessible_home_ids,
    check_home_access,
)
from backend.dashboard.common import (
    actor,
    apply,
    fragment,
    is_htmx,
    language,
    local_time,
    page,
    see_other,
    tr,
)
from backend.models import Photo, PhotoStatus, ResidentKind, Staff
from backend.photos import service
from backend.photos.routes import image_response, photo_store
from backend.services.errors import ServiceError

router = APIRouter()


def pending_photo_count(session: Session, staff: Staff) -> int:
    query = select(func.count()).select_from(Photo).where(Photo.status == PhotoStatus.PENDING.value)
    home_ids = accessible_home_ids(session, staff)
    if home_ids is not None:
        query = query.where(Photo.home_id.in_(home_ids or {""}))
    return int(session.scalar(query) or 0)


def _view(request: Request, photo: Photo) -> dict[str, Any]:
    resident = photo.resident
    home = resident.home
    return {
        "p": photo,
        "resident": resident,
        "youth": resident.kind == ResidentKind.YOUTH.value,
        "contact": photo.contact,
        "home": home,
        "sent": local_time(photo.created_at, home.timezone, language(request)),
    }


@router.get("/staff/photos", response_class=HTMLResponse)
def photo_queue(request: Request, session: SessionDep, staff: CurrentStaff) -> HTMLResponse:
    photos = service.pending_photos(session, accessible_home_ids(session, staff))
    return page(
        request,
        session,
        staff,
        "staff/photos.html",
        photos=[_view(request, p) for p in photos],
        notice=request.query_params.get("notice", ""),
    )


def _photo(session: Session, staff: Staff, photo_id: str) -> Photo:
    """The photo, or 404 when it is missing or not of the staff's homes (no existence leak)."""
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    check_home_access(session, staff, photo.home_id)
    return photo


@router.get("/staff/photos/{photo_id}/image")
def photo_image(
    photo_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    backend: BackendDep,
) -> Response:
    """The tablet-sized photo, for staff to look at before deciding."""
    photo = _photo(session, staff, photo_id)
    if photo.status == PhotoStatus.REFUSED.value:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return image_response(
        photo_store(backend).path(photo.sha256), photo.sha256, request.headers.get("if-none-match")
    )


def _decided(request: Request, message: str, notice: str) -> Response:
    if is_htmx(request):
        return fragment(request, "staff/_notice.html", message=message)
    return see_other(request, "/staff/photos", notice=notice)


@router.post("/staff/photos/{photo_id}/approve", dependencies=[CsrfChecked])
def approve_photo(
    photo_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> Response:
    photo = _photo(session, staff, photo_id)
    t = tr(request)
    try:
        changed = service.decide(session=session, photo=photo, approve=True, by=actor(staff))
    except ServiceError as exc:
        session.rollback()
        return _decided(request, t.gettext(str(exc)), "decided")
    message = t.gettext("Photo approved: %(resident)s will see it on the tablet.") % {
        "resident": photo.resident.first_name
    }
    session.commit()
    apply(request, changed)
    return _decided(request, message, "approved")


@router.post("/staff/photos/{photo_id}/refuse", dependencies=[CsrfChecked])
def refuse_photo(
    photo_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    backend: BackendDep,
) -> Response:
    photo = _photo(session, staff, photo_id)
    t = tr(request)
    try:
        changed = service.decide(session=session, photo=photo, approve=False, by=actor(staff))
    except ServiceError as exc:
        session.rollback()
        return _decided(request, t.gettext(str(exc)), "decided")
    session.commit()
    apply(request, changed)
    service.remove_files_if_unused(backend.db, photo_store(backend), photo.sha256)
    return _decided(request, t.gettext("Photo refused. It will not be shown."), "refused")
