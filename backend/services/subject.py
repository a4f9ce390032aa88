"""One resident's data: export everything Liens stores about them, or erase it.

**Export** (:func:`export_resident`): one ZIP file with ``donnees.json`` (the resident, their
home, the tablets that show them, their contacts' names and the approvals with their policies,
the call log, the daily usage figures, the tablet events naming them, the contact requests, the
photos' metadata and hearts, the audit entries about them), ``photos/`` (the family photo files
still kept), ``portrait.jpg`` (if staff chose one) and ``LISEZMOI.txt`` / ``README.txt``
explaining it in French. Not exported: secrets (a child's PIN hash, contacts' link tokens) and
other people's contact details (a relative's e-mail or phone number in a request).

**Erase** (:func:`erase_resident`): deletes, in one transaction, the resident and every row
about them (approvals, call log, usage figures, events, requests, photos and their hearts,
tablet assignments, call routes) and the contacts linked to no other resident; a tablet that
was assigned to that resident alone is retired (it would otherwise show the whole home). Photo
and portrait files no other row uses are removed after the commit (:func:`remove_files`). The
audit log gets ``resident.erase`` naming the person by id only; older entries already name
residents by id only, and stay (they record staff decisions).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, BinaryIO

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import (
    Approval,
    AuditEntry,
    Call,
    CallRoute,
    Contact,
    ContactRequest,
    Home,
    Photo,
    PhotoHeart,
    PhotoStatus,
    Resident,
    Tablet,
    TabletEvent,
    UsageDaily,
    tablet_residents,
    utcnow,
)
from backend.photos.storage import PhotoStore
from backend.services import audit, decisions
from backend.services import tablets as tablet_service
from backend.services.decisions import Consequences
from backend.services.directory import get_resident
from backend.settings import Settings

log = logging.getLogger(__name__)

EXPORT_FORMAT = "liens-resident-export/1"

README_FR = """\
Liens — export des données de {name}
=====================================

Ce fichier contient tout ce que Liens garde sur {name} (identifiant {id}),
à la date du {when} (heure UTC).

donnees.json        toutes les données, au format JSON :
  resident          la personne : prénom, nom, type (senior ou jeune), langue, dates ;
  home              l'établissement et la durée de conservation du détail ({days} jours) ;
  tablets           les tablettes qui l'affichent ;
  contacts          ses proches (nom, lien), la décision de l'équipe et ses règles d'appel ;
  calls             le journal des appels : qui, quand, combien de temps, comment ils se
                    sont terminés. Jamais le contenu d'un appel : rien n'est enregistré ;
  usage_daily       les chiffres par jour : appels passés, reçus, manqués, minutes,
                    activités ouvertes ;
  events            le détail des événements des tablettes la concernant (activités, cœurs
                    envoyés…), pour les {days} derniers jours au plus ;
  contact_requests  les demandes de mise en relation la concernant ;
  photos            les photos envoyées par ses proches (expéditeur, légende, décision,
                    cœurs), sans aucune donnée de localisation ;
  audit             les décisions de l'équipe la concernant (qui, quand, quoi).
photos/             les fichiers des photos encore conservées (les photos refusées n'ont
                    plus de fichier).
portrait.jpg        le portrait choisi par l'équipe, s'il y en a un.

Ne sont pas exportés : le code PIN (seule une empreinte est gardée), les liens personnels
des proches, et les coordonnées (courriel, téléphone) des proches, qui sont leurs données.

Pour toute question, ou pour demander l'effacement, adressez-vous à la direction de
l'établissement. Voir aussi la page « Confidentialité » de Liens : /confidentialite
"""


@dataclass
class Export:
    filename: str  # what the download is called
    size: int  # bytes written


@dataclass
class Erased:
    """What an erasure removed; the files go after the commit (:func:`remove_files`)."""

    resident_id: str
    home_id: str
    tablet_ids: list[str]  # to republish: they drop the resident at once
    retired_tablet_ids: list[str]
    photo_shas: set[str] = field(default_factory=set)
    portrait_shas: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    audit_entry_id: int | None = None
    removed_contact_ids: list[str] = field(default_factory=list)  # linked with nobody else

    @property
    def consequences(self) -> Consequences:
        """For the apply step, after the commit: the tablets drop the resident, those that
        served only them are retired, a call still under way ends, the pages of the contacts
        erased with them close."""
        changed = decisions.Consequences(republish=frozenset(self.tablet_ids))
        changed |= decisions.retired(self.retired_tablet_ids)
        changed |= decisions.end_calls(resident_id=self.resident_id)
        for contact_id in self.removed_contact_ids:
            changed |= decisions.close_pages(contact_id)
        return changed

    def summary(self) -> dict[str, Any]:
        return {
            "resident_id": self.resident_id,
            "home_id": self.home_id,
            "deleted": dict(self.counts),
            "retired_tablets": list(self.retired_tablet_ids),
        }


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "resident"


def full_name(resident: Resident) -> str:
    return f"{resident.first_name} {resident.last_name}".strip()


def events_of(session: Session, resident: Resident) -> Select[Any]:
    """The home's tablet events that name ``resident`` in ``data.resident_id``."""
    tablets = select(Tablet.id).where(Tablet.home_id == resident.home_id)
    return select(TabletEvent).where(
        TabletEvent.tablet_id.in_(tablets),
        TabletEvent.data["resident_id"].as_string() == resident.id,
    )


def audit_about(session: Session, resident_id: str) -> list[AuditEntry]:
    query = select(AuditEntry).where(
        or_(
            AuditEntry.target_id == resident_id,
            AuditEntry.details["resident_id"].as_string() == resident_id,
            AuditEntry.details["resident"].as_string() == resident_id,
        )
    )
    return list(session.scalars(query.order_by(AuditEntry.id)))


def resident_data(session: Session, resident: Resident) -> dict[str, Any]:
    """Everything stored about ``resident``, as JSON-ready data (the export's donnees.json)."""
    home = session.get(Home, resident.home_id)
    assert home is not None
    rid = resident.id
    contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.home_id == home.id))}

    def contact_name(contact_id: str | None) -> str | None:
        contact = contacts.get(contact_id or "")
        return contact.display_name if contact is not None else None

    approvals = session.scalars(
        select(Approval).where(Approval.resident_id == rid).order_by(Approval.decided_at)
    ).all()
    tablets = [session.get(Tablet, tid) for tid in tablet_service.tablets_serving(session, rid)]
    calls = session.scalars(
        select(Call).where(Call.resident_id == rid).order_by(Call.created_at, Call.id)
    ).all()
    usage = session.scalars(
        select(UsageDaily).where(UsageDaily.resident_id == rid).order_by(UsageDaily.day)
    ).all()
    events = session.scalars(events_of(session, resident).order_by(TabletEvent.ts)).all()
    requests = session.scalars(
        select(ContactRequest)
        .where(ContactRequest.resident_id == rid)
        .order_by(ContactRequest.created_at)
    ).all()
    photos = session.scalars(
        select(Photo).where(Photo.resident_id == rid).order_by(Photo.created_at, Photo.id)
    ).all()
    hearts: dict[str, list[str | None]] = {}
    for heart in session.scalars(select(PhotoHeart).where(PhotoHeart.resident_id == rid)):
        hearts.setdefault(heart.photo_id, []).append(_iso(heart.at))
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _iso(utcnow()),
        "resident": {
            "id": rid,
            "first_name": resident.first_name,
            "last_name": resident.last_name,
            "kind": resident.kind,
            "language": resident.language,
            "active": resident.active,
            "has_pin": bool(resident.pin_hash),
            "portrait": "portrait.jpg" if resident.portrait_id else None,
            "created_at": _iso(resident.created_at),
        },
        "home": {
            "id": home.id,
            "name": home.name,
            "timezone": home.timezone,
            "retention_days": home.retention_days,
        },
        "tablets": [{"id": t.id, "name": t.name} for t in tablets if t is not None],
        "contacts": [
            {
                "id": a.contact_id,
                "name": a.contact.display_name,
                "relation": a.contact.relation,
                "approval": {
                    "status": a.status,
                    "policy": a.policy,
                    "reason": a.reason,
                    "decided_by": a.decided_by,
                    "decided_at": _iso(a.decided_at),
                },
            }
            for a in approvals
        ],
        "calls": [
            {
                "id": c.id,
                "direction": c.direction,
                "contact": contact_name(c.contact_id),
                "contact_id": c.contact_id,
                "tablet_id": c.tablet_id,
                "created_at": _iso(c.created_at),
                "ring_at": _iso(c.ring_at),
                "answer_at": _iso(c.answer_at),
                "end_at": _iso(c.end_at),
                "duration_s": c.duration_s,
                "outcome": c.outcome,
                "ended_by": c.ended_by,
                "supervised_by": c.supervised_by,
            }
            for c in calls
        ],
        "usage_daily": [
            {
                "day": _iso(u.day),
                "calls_made": u.calls_made,
                "calls_received": u.calls_received,
                "calls_missed": u.calls_missed,
                "call_seconds": u.call_seconds,
                "activities": u.activities,
                "activity_seconds": u.activity_seconds,
            }
            for u in usage
        ],
        "events": [
            {"id": e.id, "tablet_id": e.tablet_id, "type": e.type, "ts": e.ts, "data": e.data}
            for e in events
        ],
        "contact_requests": [
            {
                "id": r.id,
                "source": r.source,
                "requester_name": r.requester_name,
                "relation": r.relation,
                "message": r.message,
                "status": r.status,
                "decided_at": _iso(r.decided_at),
                "decision_note": r.decision_note,
                "created_at": _iso(r.created_at),
            }
            for r in requests
        ],
        "photos": [
            {
                "id": p.id,
                "from": contact_name(p.contact_id),
                "caption": p.caption,
                "status": p.status,
                "width": p.width,
                "height": p.height,
                "created_at": _iso(p.created_at),
                "decided_at": _iso(p.decided_at),
                "hearts": hearts.get(p.id, []),
                "file": f"photos/{p.id}.jpg" if p.status != PhotoStatus.REFUSED.value else None,
            }
            for p in photos
        ],
        "audit": [
            {
                "at": _iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "target_type": e.target_type,
                "target_id": e.target_id,
                "details": e.details,
            }
            for e in audit_about(session, rid)
        ],
    }


def photo_store(settings: Settings) -> PhotoStore:
    return PhotoStore(settings.photos_dir)


def portrait_store(settings: Settings) -> PhotoStore:
    # The same folder as backend.dashboard.portraits.portrait_store.
    return PhotoStore(settings.photos_dir / "portraits")


def export_resident(
    *, session: Session, settings: Settings, resident_id: str, out: BinaryIO
) -> Export:
    """Write everything stored about one resident to ``out``, as one ZIP (see the module's
    docstring). Photos are copied from their files one at a time: memory stays small whatever
    their number, so ``out`` is best a file."""
    resident = get_resident(session, resident_id)
    data = resident_data(session, resident)
    home = data["home"]
    photos, portraits = photo_store(settings), portrait_store(settings)
    start = out.tell()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for photo in data["photos"]:
            if photo["file"] is None:
                continue
            row = session.get(Photo, photo["id"])
            path = photos.path(row.sha256) if row is not None else None
            if path is not None and path.exists():
                # JPEG is already compressed: stored as is.
                archive.write(path, photo["file"], compress_type=zipfile.ZIP_STORED)
            else:
                photo["file"] = None
        if resident.portrait_id:
            path = portraits.path(resident.portrait_id)
            if path.exists():
                archive.write(path, "portrait.jpg", compress_type=zipfile.ZIP_STORED)
            else:
                data["resident"]["portrait"] = None
        archive.writestr(
            "donnees.json", json.dumps(data, ensure_ascii=False, indent=2, default=str)
        )
        readme = README_FR.format(
            name=full_name(resident),
            id=resident.id,
            when=data["exported_at"][:16].replace("T", " "),
            days=home["retention_days"],
        )
        archive.writestr("README.txt", readme)
    stamp = utcnow().strftime("%Y%m%d")
    return Export(
        filename=f"liens-{_slug(full_name(resident))}-{stamp}.zip", size=out.tell() - start
    )


# -- erasure -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasurePreview:
    """What the confirmation page lists before anything is erased."""

    resident: Resident
    counts: dict[str, int]
    contacts_deleted: list[str]  # names of contacts linked to no one else
    contacts_kept: list[str]
    tablets_retired: list[str]  # names


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _linked_elsewhere(session: Session, contact_id: str, resident_id: str) -> bool:
    """Whether the contact has any row with another resident (those rows would cascade)."""
    for model in (Approval, Call, Photo, ContactRequest):
        column = model.contact_id
        found = session.scalar(
            select(func.count())
            .select_from(model)
            .where(column == contact_id, model.resident_id != resident_id)
        )
        if found:
            return True
    return False


def _contact_ids(session: Session, resident_id: str) -> set[str]:
    ids: set[str] = set()
    for model in (Approval, Call, Photo, ContactRequest):
        ids.update(
            cid
            for cid in session.scalars(
                select(model.contact_id).where(model.resident_id == resident_id)
            )
            if cid
        )
    return ids


def _solo_tablets(session: Session, resident_id: str) -> list[Tablet]:
    """Tablets assigned to this resident alone: without them they would serve the whole home."""
    found = []
    assigned = session.scalars(
        select(tablet_residents.c.tablet_id).where(tablet_residents.c.resident_id == resident_id)
    )
    for tablet_id in assigned:
        tablet = session.get(Tablet, tablet_id)
        if tablet is not None and tablet.retired_at is None and len(tablet.residents) == 1:
            found.append(tablet)
    return found


def _counts(session: Session, resident: Resident) -> dict[str, int]:
    rid = resident.id
    return {
        "approvals": _count(session, select(Approval.id).where(Approval.resident_id == rid)),
        "calls": _count(session, select(Call.id).where(Call.resident_id == rid)),
        "usage_days": _count(session, select(UsageDaily.id).where(UsageDaily.resident_id == rid)),
        "events": _count(session, events_of(session, resident)),
        "contact_requests": _count(
            session, select(ContactRequest.id).where(ContactRequest.resident_id == rid)
        ),
        "photos": _count(session, select(Photo.id).where(Photo.resident_id == rid)),
    }


def preview_erasure(session: Session, resident: Resident) -> ErasurePreview:
    deleted: list[str] = []
    kept: list[str] = []
    for cid in sorted(_contact_ids(session, resident.id)):
        contact = session.get(Contact, cid)
        if contact is None:
            continue
        (kept if _linked_elsewhere(session, cid, resident.id) else deleted).append(
            contact.display_name
        )
    return ErasurePreview(
        resident=resident,
        counts=_counts(session, resident),
        contacts_deleted=sorted(deleted),
        contacts_kept=sorted(kept),
        tablets_retired=sorted(t.name for t in _solo_tablets(session, resident.id)),
    )


def erase_resident(*, session: Session, settings: Settings, resident_id: str, by: str) -> Erased:
    """Delete the resident and everything about them (one transaction: the caller commits).

    Then: apply ``Erased.consequences`` (the tablets drop the resident at once, the retired
    ones leave the broker), and :func:`remove_files`.
    """
    resident = get_resident(session, resident_id)
    rid, home_id = resident.id, resident.home_id
    tablet_ids = tablet_service.tablets_serving(session, rid)
    solo = _solo_tablets(session, rid)
    counts = _counts(session, resident)
    contact_ids = _contact_ids(session, rid)
    orphans = [cid for cid in sorted(contact_ids) if not _linked_elsewhere(session, cid, rid)]
    photos = session.scalars(select(Photo).where(Photo.resident_id == rid)).all()
    erased = Erased(
        resident_id=rid,
        home_id=home_id,
        tablet_ids=[t for t in tablet_ids if t not in {s.id for s in solo}],
        retired_tablet_ids=[t.id for t in solo],
        photo_shas={p.sha256 for p in photos},
    )
    if resident.portrait_id:
        erased.portrait_shas.add(resident.portrait_id)
    event_ids = list(
        session.scalars(events_of(session, resident).with_only_columns(TabletEvent.id))
    )
    photo_ids = [p.id for p in photos]

    for tablet in solo:
        tablet_service.retire(session=session, tablet_id=tablet.id, by=by)
    tablet_service.bump_revisions(session, erased.tablet_ids)
    session.execute(
        delete(PhotoHeart).where(
            or_(PhotoHeart.resident_id == rid, PhotoHeart.photo_id.in_(photo_ids or [""]))
        )
    )
    session.execute(delete(Photo).where(Photo.resident_id == rid))
    session.execute(delete(Call).where(Call.resident_id == rid))
    session.execute(delete(UsageDaily).where(UsageDaily.resident_id == rid))
    session.execute(delete(ContactRequest).where(ContactRequest.resident_id == rid))
    for i in range(0, len(event_ids), 500):
        session.execute(delete(TabletEvent).where(TabletEvent.id.in_(event_ids[i : i + 500])))
    session.execute(delete(CallRoute).where(CallRoute.resident_id == rid))
    session.execute(delete(tablet_residents).where(tablet_residents.c.resident_id == rid))
    session.execute(delete(Approval).where(Approval.resident_id == rid))
    for cid in orphans:
        contact = session.get(Contact, cid)
        if contact is not None and contact.portrait_id:
            erased.portrait_shas.add(contact.portrait_id)
    if orphans:
        # Their photos to this resident are gone already; requests they made for no resident
        # named (resident_id NULL) point at them by contact_id only and are left.
        session.execute(delete(Contact).where(Contact.id.in_(orphans)))
    session.execute(delete(Resident).where(Resident.id == rid))
    session.expunge(resident)
    counts["contacts"] = len(orphans)
    erased.removed_contact_ids = list(orphans)
    counts["tablets_retired"] = len(solo)
    erased.counts = counts
    entry = audit.record(
        session=session,
        actor=by,
        action="resident.erase",
        target_type="resident",
        target_id=rid,
        home_id=home_id,
        details={"deleted": counts, "retired_tablets": erased.retired_tablet_ids},
    )
    session.flush()
    erased.audit_entry_id = entry.id
    return erased


def remove_files(db: Database, settings: Settings, erased: Erased) -> int:
    """After the commit: the photo and portrait files no remaining row uses; returns how many."""
    removed = 0
    photos, portraits = photo_store(settings), portrait_store(settings)
    with db.session() as session:
        for sha in sorted(erased.photo_shas):
            used = session.scalar(
                select(func.count())
                .select_from(Photo)
                .where(Photo.sha256 == sha, Photo.status != PhotoStatus.REFUSED.value)
            )
            if not used:
                photos.remove(sha)
                removed += 1
        for sha in sorted(erased.portrait_shas):
            used = session.scalar(
                select(func.count()).select_from(Resident).where(Resident.portrait_id == sha)
            ) or session.scalar(
                select(func.count()).select_from(Contact).where(Contact.portrait_id == sha)
            )
            if not used:
                portraits.remove(sha)
                removed += 1
    return removed
