"""Photo routes: the relative's upload and list (their personal link is the key), and the
tablet's download (HTTP Basic with the tablet's own broker credentials). See docs/photos.md.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from backend import apply as apply_step
from backend.api.deps import BackendDep, SessionDep
from backend.i18n import pick_language, translations
from backend.models import Photo, PhotoStatus, Tablet
from backend.photos import service
from backend.photos.processing import PhotoRejected, ProcessedPhoto, process, too_big
from backend.photos.storage import PhotoStore
from backend.photos.upload import FilePart, read_upload, refusal_for
from backend.runtime import Backend
from backend.services import directory
from backend.services import tablets as tablet_service
from backend.services.errors import NotFound
from backend.web import render

log = logging.getLogger(__name__)
router = APIRouter(tags=["photos"])

LINK_INVALID = "This personal link is not valid any more. Ask the home's staff for a new one."
NO_PHOTO = "Choose a photo to send."
NOT_SAVED = "The photos could not be saved. Try again in a moment."
FORM_SLACK = 1024 * 1024  # multipart headers and text fields around the files
IMMUTABLE = "private, max-age=31536000, immutable"


def photo_store(backend: Backend) -> PhotoStore:
    return PhotoStore(backend.settings.photos_dir)


def _language(request: Request) -> str:
    return pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept or "text/html" not in accept


def _refused(request: Request, token: str, exc: PhotoRejected) -> Response:
    """The refusal as a sentence in the page's language (JSON for the page's script)."""
    t = translations(_language(request))
    sentence = t.gettext(exc.message)
    if exc.params:
        sentence %= exc.params
    if _wants_json(request):
        return JSONResponse({"detail": sentence, "file": exc.filename}, status_code=exc.status_code)
    return render(
        request,
        "message.html",
        status_code=exc.status_code,
        title=t.gettext("The photo was not sent"),
        message=sentence,
    )


def _link_ok(backend: Backend, token: str) -> bool:
    with backend.db.session() as session:
        return directory.contact_by_token(session, token) is not None


def _precheck(backend: Backend, token: str, resident_ids: list[str], captions: list[str]) -> None:
    """The choice of residents and the captions, before any photo is decoded."""
    with backend.db.session() as session:
        contact = directory.contact_by_token(session, token)
        if contact is None:
            raise PhotoRejected(LINK_INVALID, 404)
        service.check_choice(session, contact, resident_ids, captions)


def _process_all(
    parts: list[tuple[FilePart, str]], max_pixels: int
) -> list[tuple[ProcessedPhoto, str]]:
    done = []
    for part, caption in parts:
        assert part.path is not None
        done.append((process(part.path, max_pixels=max_pixels, filename=part.filename), caption))
    return done


@router.post("/f/{token}/photos")
async def upload_photos(token: str, request: Request) -> Response:
    """Photos from the family page: ``photo`` file parts (several allowed), ``resident`` (one
    or more resident ids; optional when the relative is linked with one resident only) and
    ``caption`` (the n-th caption goes with the n-th photo, at most 200 characters).

    All or nothing: if one file is refused, none is kept, and the answer names the file.
    """
    backend: Backend = request.app.state.backend
    settings = backend.settings
    store = photo_store(backend)
    if not await run_in_threadpool(_link_ok, backend, token):
        return _refused(request, token, PhotoRejected(LINK_INVALID, 404))
    max_request = settings.photo_max_files * settings.photo_max_bytes + FORM_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_request:
        # Not worth reading at all (the browser's script checks sizes before sending anyway).
        return _refused(request, token, too_big(int(declared), settings.photo_max_bytes))
    try:
        form = await read_upload(
            request.stream(),
            request.headers.get("content-type", ""),
            new_temp_file=store.temp_path,
            max_file_bytes=settings.photo_max_bytes,
            max_files=settings.photo_max_files,
            max_request_bytes=max_request,
        )
    except PhotoRejected as exc:
        return _refused(request, token, exc)
    try:
        oversize = [part for part in form.files if part.too_big]
        if oversize:
            return _refused(request, token, refusal_for(oversize[0], settings.photo_max_bytes))
        files = [part for part in form.files if part.path is not None and part.size > 0]
        if not files:
            return _refused(request, token, PhotoRejected(NO_PHOTO, 400))
        captions = [c.strip() for c in form.fields.get("caption", [])]
        captions += [""] * (len(files) - len(captions))
        residents = form.fields.get("resident", [])
        await run_in_threadpool(_precheck, backend, token, residents, captions)
        processed = await run_in_threadpool(
            _process_all, list(zip(files, captions, strict=False)), settings.photo_max_pixels
        )
        saved = await run_in_threadpool(
            lambda: service.save_photos(
                db=backend.db,
                store=store,
                token=token,
                resident_ids=residents,
                photos=processed,
            )
        )
    except PhotoRejected as exc:
        return _refused(request, token, exc)
    except NotFound:
        return _refused(request, token, PhotoRejected(LINK_INVALID, 404))
    except Exception:
        log.exception("photos from %s… not saved", token[:6])
        return _refused(request, token, PhotoRejected(NOT_SAVED, 503))
    finally:
        form.discard()
    await run_in_threadpool(apply_step.apply, backend, request.app.state.hub, saved.consequences)
    if _wants_json(request):
        return JSONResponse({"photos": saved.photos}, status_code=201)
    lang = request.query_params.get("lang")
    return RedirectResponse(f"/f/{token}{'?lang=' + lang if lang else ''}#photos", 303)


@router.get("/f/{token}/photos")
def family_photo_list(token: str, session: SessionDep, backend: BackendDep) -> dict[str, Any]:
    """What the relative sent, newest first: status, thumbnail, who sent a heart back."""
    contact = directory.contact_by_token(session, token)
    if contact is None:
        raise HTTPException(status_code=404, detail="Not found")
    settings = backend.settings
    return {
        "photos": service.family_photos(session, contact),
        "max_bytes": settings.photo_max_bytes,
        "max_files": settings.photo_max_files,
    }


@router.get("/f/{token}/photos/{photo_id}/thumb")
def family_thumbnail(
    token: str, photo_id: str, session: SessionDep, backend: BackendDep
) -> Response:
    """The thumbnail of a photo the relative sent (never anyone else's)."""
    contact = directory.contact_by_token(session, token)
    photo = session.get(Photo, photo_id)
    if contact is None or photo is None or photo.contact_id != contact.id:
        raise HTTPException(status_code=404, detail="Not found")
    if photo.status == PhotoStatus.REFUSED.value:
        raise HTTPException(status_code=404, detail="Not found")
    return image_response(
        photo_store(backend).path(photo.sha256, thumb=True), photo.thumb_sha256, None
    )


def image_response(path: Path, sha256: str, if_none_match: str | None) -> Response:
    """A stored JPEG with ``ETag`` = its SHA-256 and ``Range`` support (Starlette's)."""
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if if_none_match and etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    if not path.exists():
        log.error("photo file %s is missing", path.name)
        raise HTTPException(status_code=404, detail="Not found")
    return FileResponse(path, media_type="image/jpeg", headers=headers)


# -- the tablet's download -------------------------------------------------------------------------

basic = HTTPBasic(auto_error=False, realm="liens-tablet")


class _VerifiedPasswords:
    """Tablet passwords already checked with scrypt, by tablet id (a fast path for downloads).

    An entry holds the password hash it was checked against: a new enrolment or a retirement
    changes the hash, and the entry no longer matches.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def check(self, tablet: Tablet, password: str) -> bool:
        digest = hashlib.sha256(password.encode()).digest()
        with self._lock:
            known = self._known.get(tablet.id)
        if known is not None and known[0] == tablet.password_hash:
            return hmac.compare_digest(known[1], digest)
        if not tablet_service.verify_password(password, tablet.password_hash):
            return False
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[tablet.id] = (tablet.password_hash, digest)
        return True


_verified = _VerifiedPasswords()


def current_tablet(
    session: SessionDep, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]
) -> Tablet:
    """The enrolled, not retired tablet whose id and password came with the request; 401 if not."""
    refused = HTTPException(
        status_code=401,
        detail="Tablet credentials required",
        headers={"WWW-Authenticate": 'Basic realm="liens-tablet"'},
    )
    if credentials is None:
        raise refused
    tablet = session.get(Tablet, credentials.username)
    if (
        tablet is None
        or tablet.retired_at is not None
        or not tablet.password_hash
        or not _verified.check(tablet, credentials.password)
    ):
        raise refused
    return tablet


CurrentTablet = Annotated[Tablet, Depends(current_tablet)]


@router.get(
    service.TABLET_PHOTO_PATH.replace("{id}", "{photo_id}"),
    responses={206: {"description": "Part of the photo (Range)"}, 304: {}, 401: {}, 404: {}},
)
def tablet_photo(
    photo_id: str,
    request: Request,
    session: SessionDep,
    backend: BackendDep,
    tablet: CurrentTablet,
    size: Annotated[str, Query(pattern="^(display|thumb)$")] = "display",
) -> Response:
    """A photo of the tablet's index: the tablet-sized JPEG, or ``?size=thumb``.

    ``ETag`` is the file's SHA-256 (``If-None-Match`` gives 304); ``Range`` (one range or
    several) gives 206, ``If-Range`` with the ETag resumes only the same file. A photo that is
    not (or no longer) in this tablet's index is a 404, like one that does not exist.
    """
    photo = service.photo_for_tablet(session, tablet, photo_id)
    if photo is None:
        raise HTTPException(status_code=404, detail="Not found")
    thumb = size == "thumb"
    return image_response(
        photo_store(backend).path(photo.sha256, thumb=thumb),
        photo.thumb_sha256 if thumb else photo.sha256,
        request.headers.get("if-none-match"),
    )
