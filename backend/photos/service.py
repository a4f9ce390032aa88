"""Photos as rows: saving an upload, moderation, the tablets' photo index, hearts.

Order of a save: the files are put in place first (temporary name, then rename), then the rows
are inserted and committed; if anything fails after the files were written, the files this save
created are removed again unless another row already uses them. So there is never a row without
its files, and no file is left that no row points to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import (
    Approval,
    ApprovalStatus,
    Contact,
    Home,
    Photo,
    PhotoHeart,
    PhotoStatus,
    Resident,
    ResidentKind,
    Tablet,
    utcnow,
)
from backend.photos.processing import PhotoRejected, ProcessedPhoto
from backend.photos.storage import PhotoStore
from backend.services import audit, decisions
from backend.services import tablets as tablet_service
from backend.services.decisions import Consequences
from backend.services.errors import Conflict, NotFound

log = logging.getLogger(__name__)

HEART_EVENT = "photo_heart"
INDEX_LIMIT = 200  # newest approved photos per resident in a tablet's configuration
CAPTION_MAX = 200
TABLET_PHOTO_PATH = "/api/v1/tablets/photos/{id}"

NOT_FOR_YOU = "You can send photos only to the people you are in touch with."
CHOOSE_RESIDENT = "Choose who the photos are for."
CAPTION_TOO_LONG = "A caption can be at most %(n)s characters long."


def needs_moderation(home: Home, resident: Resident) -> bool:
    """Youth: always. Seniors: when the home asks for it."""
    return resident.kind == ResidentKind.YOUTH.value or bool(home.moderate_senior_photos)


def approved_residents(session: Session, contact: Contact) -> list[Resident]:
    """The active residents ``contact`` is approved for, by first name."""
    residents = session.scalars(
        select(Resident)
        .join(Approval, Approval.resident_id == Resident.id)
        .where(
            Approval.contact_id == contact.id,
            Approval.status == ApprovalStatus.APPROVED.value,
            Resident.active.is_(True),
        )
        .order_by(Resident.first_name, Resident.id)
    )
    return list(residents)


def check_choice(
    session: Session, contact: Contact, resident_ids: list[str], captions: list[str]
) -> list[str]:
    """The residents the upload is for (all checked); :class:`PhotoRejected` otherwise."""
    allowed = [r.id for r in approved_residents(session, contact)]
    chosen = list(dict.fromkeys(r for r in resident_ids if r))
    if not chosen and len(allowed) == 1:
        chosen = allowed
    if not chosen:
        raise PhotoRejected(CHOOSE_RESIDENT, 400)
    if any(r not in allowed for r in chosen):
        raise PhotoRejected(NOT_FOR_YOU, 403)
    if any(len(c) > CAPTION_MAX for c in captions):
        raise PhotoRejected(CAPTION_TOO_LONG, 400, {"n": CAPTION_MAX})
    return chosen


@dataclass(frozen=True)
class Saved:
    """The answer of a save: the rows, as the family page shows them, and tablets to update."""

    photos: list[dict[str, Any]]
    consequences: Consequences  # the tablets showing a photo that needed no moderation

    @property
    def tablet_ids(self) -> list[str]:
        return self.consequences.to_publish


def save_photos(
    *,
    db: Database,
    store: PhotoStore,
    token: str,
    resident_ids: list[str],
    photos: list[tuple[ProcessedPhoto, str]],
) -> Saved:
    """Store ``photos`` (each with its caption) for each of ``resident_ids``, atomically."""
    created: list[str] = []
    try:
        for processed, _caption in photos:
            if store.put(processed):
                created.append(processed.display.sha256)
        with db.session() as session:
            contact = _contact(session, token)
            chosen = check_choice(session, contact, resident_ids, [c for _, c in photos])
            home = session.get(Home, contact.home_id)
            assert home is not None
            rows: list[Photo] = []
            approved: set[str] = set()
            for resident_id in chosen:
                resident = session.get(Resident, resident_id)
                assert resident is not None
                moderated = needs_moderation(home, resident)
                for processed, caption in photos:
                    row = _add_one(session, contact, resident, processed, caption, moderated)
                    rows.append(row)
                    if row.status == PhotoStatus.APPROVED.value:
                        approved.add(resident.id)
            changed = decisions.residents_changed(session, approved)
            session.flush()
            answer = Saved([photo_view(row) for row in rows], changed)
        return answer
    except BaseException:
        for sha in created:
            if not is_referenced(db, sha):
                store.remove(sha)
        raise


def _contact(session: Session, token: str) -> Contact:
    from backend.services.directory import contact_by_token

    contact = contact_by_token(session, token)
    if contact is None:
        raise NotFound("This personal link is not valid any more.")
    return contact


def _add_one(
    session: Session,
    contact: Contact,
    resident: Resident,
    processed: ProcessedPhoto,
    caption: str,
    moderated: bool,
) -> Photo:
    sha = processed.display.sha256
    existing = session.scalars(
        select(Photo).where(
            Photo.resident_id == resident.id, Photo.contact_id == contact.id, Photo.sha256 == sha
        )
    ).one_or_none()
    if existing is not None:
        # The same photo again (a retry from a phone that lost the answer): one row.
        if caption and existing.status == PhotoStatus.PENDING.value:
            existing.caption = caption
        return existing
    row = Photo(
        home_id=contact.home_id,
        resident_id=resident.id,
        contact_id=contact.id,
        sha256=sha,
        size=processed.display.size,
        width=processed.display.width,
        height=processed.display.height,
        thumb_sha256=processed.thumb.sha256,
        thumb_size=processed.thumb.size,
        caption=caption.strip(),
        status=PhotoStatus.PENDING.value if moderated else PhotoStatus.APPROVED.value,
        created_at=utcnow(),
    )
    if not moderated:
        row.decided_by = "auto"
        row.decided_at = row.created_at
    session.add(row)
    session.flush()
    return row


def is_referenced(db: Database, sha256: str) -> bool:
    """Whether a row that keeps its files (not refused) uses this content."""
    with db.session() as session:
        return _referenced(session, sha256)


def _referenced(session: Session, sha256: str) -> bool:
    found = session.scalars(
        select(Photo.id)
        .where(Photo.sha256 == sha256, Photo.status != PhotoStatus.REFUSED.value)
        .limit(1)
    ).first()
    return found is not None


# -- moderation ------------------------------------------------------------------------------------


def pending_photos(session: Session, home_ids: set[str] | None) -> list[Photo]:
    """Photos waiting for staff, oldest first, in ``home_ids`` (None: every home)."""
    query = select(Photo).where(Photo.status == PhotoStatus.PENDING.value)
    if home_ids is not None:
        query = query.where(Photo.home_id.in_(home_ids or {""}))
    return list(session.scalars(query.order_by(Photo.created_at, Photo.id)))


def decide(*, session: Session, photo: Photo, approve: bool, by: str) -> Consequences:
    """Approve or refuse a pending photo (audited); an approved one reaches the tablets.

    A refused photo's files are removed by the caller after the commit
    (:func:`remove_files_if_unused`).
    """
    if photo.status != PhotoStatus.PENDING.value:
        raise Conflict("This photo has already been decided.")
    photo.status = (PhotoStatus.APPROVED if approve else PhotoStatus.REFUSED).value
    photo.decided_by = by
    photo.decided_at = utcnow()
    audit.record(
        session=session,
        actor=by,
        action="photo.approve" if approve else "photo.refuse",
        target_type="photo",
        target_id=photo.id,
        home_id=photo.home_id,
        details={
            "resident": photo.resident_id,
            "contact": photo.contact_id,
            "sha256": photo.sha256,
        },
    )
    if not approve:
        return decisions.NOTHING  # a pending photo was on no tablet
    return decisions.residents_changed(session, [photo.resident_id])


def remove_files_if_unused(db: Database, store: PhotoStore, sha256: str) -> None:
    if not is_referenced(db, sha256):
        store.remove(sha256)


# -- the tablets -----------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


def photo_index(
    session: Session, resident: Resident, contact_ids: set[str]
) -> list[dict[str, Any]]:
    """The ``photos`` of a resident in a tablet's configuration, newest first.

    Only approved photos from contacts still approved for the resident: a revocation takes the
    contact's photos off the tablet with the contact.
    """
    if not contact_ids:
        return []
    rows = session.scalars(
        select(Photo)
        .where(
            Photo.resident_id == resident.id,
            Photo.status == PhotoStatus.APPROVED.value,
            Photo.contact_id.in_(contact_ids),
        )
        .order_by(Photo.decided_at.desc(), Photo.id)
        .limit(INDEX_LIMIT)
    )
    index = []
    for photo in rows:
        url = TABLET_PHOTO_PATH.format(id=photo.id)
        index.append(
            {
                "id": photo.id,
                "url": url,
                "sha256": photo.sha256,
                "size": photo.size,
                "width": photo.width,
                "height": photo.height,
                "thumb_url": f"{url}?size=thumb",
                "thumb_sha256": photo.thumb_sha256,
                "thumb_size": photo.thumb_size,
                "caption": photo.caption,
                "from": photo.contact.display_name,
                "from_contact_id": photo.contact_id,
                "added_at": _iso(photo.decided_at or photo.created_at),
            }
        )
    return index


def photo_for_tablet(session: Session, tablet: Tablet, photo_id: str) -> Photo | None:
    """The photo if ``tablet`` may download it: approved, for a resident it serves, from a
    contact still approved for that resident; None otherwise."""
    photo = session.get(Photo, photo_id)
    if photo is None or photo.status != PhotoStatus.APPROVED.value:
        return None
    if photo.resident_id not in {r.id for r in tablet_service.served_residents(session, tablet)}:
        return None
    approval = session.scalars(
        select(Approval).where(
            Approval.resident_id == photo.resident_id,
            Approval.contact_id == photo.contact_id,
            Approval.status == ApprovalStatus.APPROVED.value,
        )
    ).one_or_none()
    return photo if approval is not None else None


def record_heart(
    session: Session, *, tablet_id: str, event_id: str, data: dict[str, Any]
) -> PhotoHeart | None:
    """A ``photo_heart`` event from a tablet: one heart per event id; None when dropped."""
    photo_id, resident_id = data.get("photo_id"), data.get("resident_id")
    if not isinstance(photo_id, str) or not isinstance(resident_id, str):
        log.warning("photo_heart %s without photo_id or resident_id; dropped", event_id)
        return None
    tablet = session.get(Tablet, tablet_id)
    photo = photo_for_tablet(session, tablet, photo_id) if tablet is not None else None
    if photo is None or photo.resident_id != resident_id:
        log.warning(
            "photo_heart %s for a photo tablet %s may not show; dropped", event_id, tablet_id
        )
        return None
    if session.get(PhotoHeart, event_id) is not None:
        return None
    heart = PhotoHeart(id=event_id, photo_id=photo.id, resident_id=resident_id, tablet_id=tablet_id)
    session.add(heart)
    return heart


# -- the relative's page ---------------------------------------------------------------------------


def photo_view(photo: Photo) -> dict[str, Any]:
    """A photo as its sender sees it on the family page (and in the upload's answer)."""
    # Every heart on a photo comes from its resident (a photo row is for one resident).
    liked_by = [photo.resident.first_name] if photo.hearts else []
    return {
        "id": photo.id,
        "resident_id": photo.resident_id,
        "resident": photo.resident.first_name,
        "caption": photo.caption,
        "status": photo.status,
        "sent_at": _iso(photo.created_at),
        "thumb_url": (
            f"/f/{photo.contact.link_token}/photos/{photo.id}/thumb"
            if photo.status != PhotoStatus.REFUSED.value
            else None
        ),
        "hearts": len(photo.hearts),
        "liked_by": liked_by,
    }


def family_photos(session: Session, contact: Contact, limit: int = 60) -> list[dict[str, Any]]:
    """What the relative sent, newest first, with each photo's answer and hearts."""
    rows = session.scalars(
        select(Photo)
        .where(Photo.contact_id == contact.id)
        .order_by(Photo.created_at.desc(), Photo.id)
        .limit(limit)
    )
    return [photo_view(row) for row in rows]
