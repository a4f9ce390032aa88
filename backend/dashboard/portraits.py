"""Portraits: the photo staff choose for a resident (the tablet's picker) and for a contact (the
resident's home tile). Initials stay the fallback everywhere.

Storage: ``Resident.portrait_id`` / ``Contact.portrait_id`` hold the SHA-256 of the portrait's
JPEG, kept content-addressed in its own :class:`PhotoStore` (``{photos_dir}/portraits``) with a
320 px thumbnail for the dashboard. The family ``Photo`` table is not reused: its rows are a
sender's photo for one resident, moderated, hearted and listed in the slideshow, none of which a
portrait is. A separate folder also keeps the family photos' clean-up (a refused photo's files
are removed when no ``Photo`` row uses them) away from portrait files.

The upload goes through the family photos' checks (``backend.photos``: real type, size limit
while streaming, pixel limit, re-encoding without EXIF); the tablet gets a 640 px version.
The CSRF token is checked here rather than with ``CsrfChecked``: that dependency would let
Starlette parse (and spool) the whole multipart body before the size limit could apply. An
``X-CSRF-Token`` header is checked before the body is read; a plain form's ``csrf_token`` field
once the body is read, before anything is decoded or stored.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import BackendDep, SessionDep
from backend.auth import sessions
from backend.auth.deps import (
    CSRF_REFUSED,
    CurrentStaff,
    check_home_access,
    get_staff_session,
    home_for,
)
from backend.dashboard.common import actor, apply, see_other, tr
from backend.dashboard.homes import home_page_response
from backend.models import Contact, Resident, Staff
from backend.photos.processing import (
    JPEG_QUALITY,
    PhotoRejected,
    ProcessedPhoto,
    Rendition,
    process,
    too_big,
)
from backend.photos.routes import CurrentTablet, image_response
from backend.photos.storage import PhotoStore
from backend.photos.upload import UploadForm, read_upload, refusal_for
from backend.runtime import Backend
from backend.services import audit, decisions
from backend.services import tablets as tablet_service
from backend.services.decisions import Consequences

log = logging.getLogger(__name__)
router = APIRouter()

PORTRAIT_PX = 640  # the tablet's version: a tile or a picker card, never full screen
FORM_SLACK = 64 * 1024  # the CSRF field and multipart headers around the one file
NO_PHOTO = "Choose a photo to send."
NOT_SAVED = "The photo could not be saved. Try again in a moment."
NOT_FOUND = "Not found"


def portrait_store(backend: Backend) -> PhotoStore:
    return PhotoStore(backend.settings.photos_dir / "portraits")


# -- processing and storage ----------------------------------------------------------------------


def _portrait(processed: ProcessedPhoto) -> ProcessedPhoto:
    """The tablet's version (at most PORTRAIT_PX), from the already clean display JPEG."""
    with Image.open(io.BytesIO(processed.display.data), formats=["JPEG"]) as opened:
        opened.load()
        image = opened.convert("RGB")
    image.thumbnail((PORTRAIT_PX, PORTRAIT_PX), Image.Resampling.LANCZOS)
    clean = Image.new("RGB", image.size)  # only the pixels: no metadata can be carried over
    clean.paste(image)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    data = out.getvalue()
    rendition = Rendition(data, hashlib.sha256(data).hexdigest(), clean.width, clean.height)
    return ProcessedPhoto(display=rendition, thumb=processed.thumb)


def prepare(path: Path, *, max_pixels: int, filename: str = "") -> ProcessedPhoto:
    """Check and re-encode an uploaded file (:class:`PhotoRejected` when refused)."""
    return _portrait(process(path, max_pixels=max_pixels, filename=filename))


def in_use(session: Session, portrait_id: str) -> bool:
    for model in (Resident, Contact):
        found = session.scalars(
            select(model.id).where(model.portrait_id == portrait_id).limit(1)
        ).first()
        if found is not None:
            return True
    return False


@dataclass(frozen=True)
class PortraitSet:
    consequences: Consequences  # the tablets that show the portrait
    replaced: str | None  # the previous portrait, to remove once committed if nothing uses it


def set_portrait(
    *, session: Session, target: Resident | Contact, portrait_id: str, by: str
) -> PortraitSet:
    """Point ``target`` at a stored portrait (audited); bumps the tablets that show it."""
    previous = target.portrait_id
    target.portrait_id = portrait_id
    kind = "resident" if isinstance(target, Resident) else "contact"
    audit.record(
        session=session,
        actor=by,
        action=f"{kind}.portrait",
        target_type=kind,
        target_id=target.id,
        home_id=target.home_id,
        details={"sha256": portrait_id, "previous": previous},
    )
    if isinstance(target, Resident):
        resident_ids = [target.id]
    else:
        resident_ids = [a.resident_id for a in target.approvals]
    changed = decisions.residents_changed(session, resident_ids)
    session.flush()
    return PortraitSet(changed, previous if previous != portrait_id else None)


# -- the dashboard's upload ----------------------------------------------------------------------


def _target(session: Session, staff: Staff, kind: str, target_id: str) -> Resident | Contact:
    target: Resident | Contact | None = (
        session.get(Resident, target_id) if kind == "resident" else session.get(Contact, target_id)
    )
    check_home_access(session, staff, target.home_id if target is not None else None)
    assert target is not None
    return target


def _same(given: str, expected: str) -> bool:
    return bool(expected and given) and hmac.compare_digest(given.encode(), expected.encode())


async def _checked_upload(request: Request, backend: Backend) -> UploadForm | None:
    """The CSRF token (header, or the form's field), then the streamed body (multipart only)."""
    row = get_staff_session(request)
    expected = row.csrf_token if row is not None else ""
    header = request.headers.get(sessions.CSRF_HEADER, "")
    if header and not _same(header, expected):
        raise HTTPException(status_code=403, detail=CSRF_REFUSED)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        if not header:
            given = ""
            if content_type.startswith("application/x-www-form-urlencoded"):
                value = (await request.form()).get(sessions.CSRF_FIELD)
                given = value if isinstance(value, str) else ""
            if not _same(given, expected):
                raise HTTPException(status_code=403, detail=CSRF_REFUSED)
        return None
    settings = backend.settings
    store = portrait_store(backend)
    max_request = settings.photo_max_bytes + FORM_SLACK
    declared = request.headers.get("content-length", "")
    if header and declared.isdigit() and int(declared) > max_request:
        return UploadForm(received=int(declared), truncated=True)
    form = await read_upload(
        request.stream(),
        content_type,
        new_temp_file=store.temp_path,
        max_file_bytes=settings.photo_max_bytes,
        max_files=1,
        max_request_bytes=max_request,
    )
    if not header and not _same((form.fields.get(sessions.CSRF_FIELD) or [""])[0], expected):
        form.discard()
        raise HTTPException(status_code=403, detail=CSRF_REFUSED)
    return form


def _refused(
    request: Request, session: Session, staff: Staff, home_id: str, exc: PhotoRejected
) -> Response:
    """The home page again, with the sentence for the refused file."""
    session.rollback()
    sentence = tr(request).gettext(exc.message)
    if exc.params:
        sentence %= exc.params
    home = home_for(session, staff, home_id)
    return home_page_response(
        request, session, staff, home, error=sentence, status_code=exc.status_code
    )


def _save(
    request: Request,
    session: Session,
    staff: Staff,
    backend: Backend,
    kind: str,
    target_id: str,
    form: UploadForm | None,
) -> Response:
    settings = backend.settings
    store = portrait_store(backend)
    target = _target(session, staff, kind, target_id)
    home_id = target.home_id
    if form is None:
        return _refused(request, session, staff, home_id, PhotoRejected(NO_PHOTO, 400))
    if form.truncated and not form.files:
        return _refused(
            request, session, staff, home_id, too_big(form.received, settings.photo_max_bytes)
        )
    oversize = [part for part in form.files if part.too_big]
    if oversize:
        exc = refusal_for(oversize[0], settings.photo_max_bytes)
        return _refused(request, session, staff, home_id, exc)
    files = [part for part in form.files if part.path is not None and part.size > 0]
    if not files:
        return _refused(request, session, staff, home_id, PhotoRejected(NO_PHOTO, 400))
    part = files[0]
    assert part.path is not None
    try:
        portrait = prepare(part.path, max_pixels=settings.photo_max_pixels, filename=part.filename)
    except PhotoRejected as exc:
        return _refused(request, session, staff, home_id, exc)
    sha = portrait.display.sha256
    created = store.put(portrait)
    try:
        done = set_portrait(session=session, target=target, portrait_id=sha, by=actor(staff))
        session.commit()
    except Exception:
        log.exception("portrait of %s %s not saved", kind, target_id)
        session.rollback()
        if created and not in_use(session, sha):
            store.remove(sha)
        return _refused(request, session, staff, home_id, PhotoRejected(NOT_SAVED, 503))
    if done.replaced and not in_use(session, done.replaced):
        store.remove(done.replaced)
    apply(request, done.consequences)
    return see_other(request, f"/staff/homes/{home_id}", notice="portrait_saved")


async def _upload(
    request: Request,
    session: Session,
    staff: Staff,
    backend: Backend,
    kind: str,
    target_id: str,
) -> Response:
    # Whose portrait, first: another home's resident is a 404 before anything is read.
    await run_in_threadpool(_target, session, staff, kind, target_id)
    form = await _checked_upload(request, backend)
    try:
        return await run_in_threadpool(
            _save, request, session, staff, backend, kind, target_id, form
        )
    finally:
        if form is not None:
            form.discard()


@router.post("/staff/residents/{resident_id}/portrait")
async def upload_resident_portrait(
    resident_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    backend: BackendDep,
) -> Response:
    """``multipart/form-data``: ``portrait`` (one JPEG, PNG or WebP file) and ``csrf_token``."""
    return await _upload(request, session, staff, backend, "resident", resident_id)


@router.post("/staff/contacts/{contact_id}/portrait")
async def upload_contact_portrait(
    contact_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    backend: BackendDep,
) -> Response:
    """``multipart/form-data``: ``portrait`` (one JPEG, PNG or WebP file) and ``csrf_token``."""
    return await _upload(request, session, staff, backend, "contact", contact_id)


def _thumbnail(
    request: Request, session: Session, staff: Staff, backend: Backend, kind: str, target_id: str
) -> Response:
    target = _target(session, staff, kind, target_id)
    if not target.portrait_id:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    path = portrait_store(backend).path(target.portrait_id, thumb=True)
    digest = f"{target.portrait_id}.thumb"
    return image_response(path, digest, request.headers.get("if-none-match"))


@router.get("/staff/residents/{resident_id}/portrait")
def resident_portrait(
    resident_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    backend: BackendDep,
) -> Response:
    """The resident's portrait thumbnail (the dashboard's list); 404 without one."""
    return _thumbnail(request, session, staff, backend, "resident", resident_id)


@router.get("/staff/contacts/{contact_id}/portrait")
def contact_portrait(
    contact_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    backend: BackendDep,
) -> Response:
    """The contact's portrait thumbnail (the dashboard's list); 404 without one."""
    return _thumbnail(request, session, staff, backend, "contact", contact_id)


# -- the tablet's download -----------------------------------------------------------------------


@router.get(
    tablet_service.TABLET_PORTRAIT_PATH.replace("{id}", "{portrait_id}"),
    responses={206: {"description": "Part of the portrait (Range)"}, 304: {}, 401: {}, 404: {}},
)
def tablet_portrait(
    portrait_id: str,
    request: Request,
    session: SessionDep,
    backend: BackendDep,
    tablet: CurrentTablet,
) -> Response:
    """A portrait the tablet's configuration lists (HTTP Basic, ETag, Range as for photos):
    of a resident it serves, or of a contact shown to one; 404 otherwise, all alike."""
    if portrait_id not in tablet_service.portrait_ids(session, tablet):
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return image_response(
        portrait_store(backend).path(portrait_id),
        portrait_id,
        request.headers.get("if-none-match"),
    )
