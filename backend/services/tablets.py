"""Tablets: creation, single-use enrolment codes, broker credentials and their configuration."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager

from backend.models import (
    Approval,
    ApprovalStatus,
    Contact,
    EnrolmentCode,
    Home,
    Photo,
    PhotoStatus,
    Resident,
    Staff,
    StaffRole,
    Tablet,
    staff_homes,
    tablet_residents,
    utcnow,
)
from backend.services import audit
from backend.services.directory import active_approvals, get_home, get_resident
from backend.services.errors import Conflict, NotFound, ServiceError

if TYPE_CHECKING:
    from backend.services.decisions import Consequences

CODE_DIGITS = 8


class EnrolmentRefused(ServiceError):
    """The code cannot enrol a tablet; ``reason`` is machine-readable for the kiosk."""

    status_code = 403

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class IssuedCode:
    tablet_id: str
    code: str
    expires_at: str


@dataclass(frozen=True)
class Enrolment:
    tablet_id: str
    password: str
    home_name: str
    tablet_name: str

    @property
    def consequences(self) -> Consequences:
        """The tablet's first configuration (its revision was bumped by the enrolment)."""
        from backend.services.decisions import Consequences

        return Consequences(republish=frozenset({self.tablet_id}))


def get_tablet(session: Session, tablet_id: str) -> Tablet:
    tablet = session.get(Tablet, tablet_id)
    if tablet is None:
        raise NotFound(f"Tablet {tablet_id} not found")
    return tablet


def _code_hash(secret_key: str, code: str) -> str:
    return hmac.new(secret_key.encode(), code.encode(), hashlib.sha256).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(digest.hex(), digest_hex)


def add_tablet(
    *, session: Session, home_id: str, name: str, resident_ids: list[str] | None = None, by: str
) -> Tablet:
    home = get_home(session, home_id)
    if not name.strip():
        raise ServiceError("A tablet needs a name (e.g. 'Salon, 1er étage')")
    tablet = Tablet(home_id=home.id, name=name.strip())
    for resident_id in resident_ids or []:
        resident = get_resident(session, resident_id)
        if resident.home_id != home.id:
            raise Conflict("A tablet can only serve residents of its own home")
        tablet.residents.append(resident)
    session.add(tablet)
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="tablet.add",
        target_type="tablet",
        target_id=tablet.id,
        home_id=home.id,
        details={"name": tablet.name, "residents": [r.id for r in tablet.residents]},
    )
    return tablet


def issue_code(
    *, session: Session, tablet_id: str, secret_key: str, ttl: timedelta, by: str
) -> IssuedCode:
    """A new single-use code for ``tablet_id``; earlier unused codes stop working."""
    tablet = get_tablet(session, tablet_id)
    if tablet.retired_at is not None:
        raise Conflict("This tablet is retired")
    for old in session.scalars(
        select(EnrolmentCode).where(
            EnrolmentCode.tablet_id == tablet.id, EnrolmentCode.used_at.is_(None)
        )
    ):
        old.used_at = utcnow()
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    expires = utcnow() + ttl
    session.add(
        EnrolmentCode(
            tablet_id=tablet.id, code_hash=_code_hash(secret_key, code), expires_at=expires
        )
    )
    audit.record(
        session=session,
        actor=by,
        action="tablet.enrolment_code",
        target_type="tablet",
        target_id=tablet.id,
        home_id=tablet.home_id,
        details={"expires_at": expires.isoformat()},
    )
    session.flush()
    return IssuedCode(tablet_id=tablet.id, code=code, expires_at=expires.isoformat())


def enrol(*, session: Session, code: str, secret_key: str) -> Enrolment:
    """Spend ``code`` and give its tablet a fresh broker password (returned once, stored hashed).

    The code row is locked for update so that two tablets racing with the same code cannot both
    succeed (PostgreSQL); SQLite serialises writers anyway.
    """
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != CODE_DIGITS:
        raise EnrolmentRefused("invalid_code", "This enrolment code is not valid")
    row = session.scalars(
        select(EnrolmentCode)
        .where(EnrolmentCode.code_hash == _code_hash(secret_key, code))
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise EnrolmentRefused("invalid_code", "This enrolment code is not valid")
    if row.used_at is not None:
        raise EnrolmentRefused("used_code", "This enrolment code has already been used")
    if row.expires_at < utcnow():
        raise EnrolmentRefused("expired_code", "This enrolment code has expired")
    tablet = get_tablet(session, row.tablet_id)
    if tablet.retired_at is not None:
        raise EnrolmentRefused("invalid_code", "This tablet is retired")
    row.used_at = utcnow()
    password = secrets.token_urlsafe(24)
    tablet.password_hash = hash_password(password)
    tablet.enrolled_at = utcnow()
    tablet.config_revision += 1
    audit.record(
        session=session,
        actor=f"tablet:{tablet.id}",
        action="tablet.enrol",
        target_type="tablet",
        target_id=tablet.id,
        home_id=tablet.home_id,
    )
    session.flush()
    return Enrolment(
        tablet_id=tablet.id, password=password, home_name=tablet.home.name, tablet_name=tablet.name
    )


def retire(*, session: Session, tablet_id: str, by: str) -> Tablet:
    tablet = get_tablet(session, tablet_id)
    tablet.retired_at = utcnow()
    tablet.password_hash = ""
    audit.record(
        session=session,
        actor=by,
        action="tablet.retire",
        target_type="tablet",
        target_id=tablet.id,
        home_id=tablet.home_id,
    )
    session.flush()
    return tablet


def served_residents(session: Session, tablet: Tablet) -> list[Resident]:
    """The residents a tablet serves: its assigned ones, or its whole home when none is."""
    if tablet.residents:
        residents = [r for r in tablet.residents if r.active]
    else:
        residents = list(
            session.scalars(
                select(Resident).where(Resident.home_id == tablet.home_id, Resident.active)
            )
        )
    return sorted(residents, key=lambda r: (r.created_at, r.id))


def tablets_serving(session: Session, resident_id: str) -> list[str]:
    """Ids of the enrolled, not retired tablets whose configuration shows ``resident_id``."""
    resident = get_resident(session, resident_id)
    assigned = set(
        session.scalars(
            select(tablet_residents.c.tablet_id).where(
                tablet_residents.c.resident_id == resident_id
            )
        )
    )
    result = []
    for tablet in session.scalars(
        select(Tablet).where(Tablet.home_id == resident.home_id, Tablet.retired_at.is_(None))
    ):
        if tablet.id in assigned or not tablet.residents:
            result.append(tablet.id)
    return sorted(result)


def staff_pins(session: Session, tablet: Tablet) -> list[dict[str, str]]:
    """The argon2 PIN hashes of the staff who may open the tablet's staff screen, offline:
    active staff assigned to the tablet's home, and the admins, each with a PIN set."""
    assigned = select(staff_homes.c.staff_id).where(staff_homes.c.home_id == tablet.home_id)
    rows = session.scalars(
        select(Staff)
        .where(
            Staff.active.is_(True),
            Staff.pin_hash != "",
            (Staff.role == StaffRole.ADMIN.value) | Staff.id.in_(assigned),
        )
        .order_by(Staff.id)
    )
    return [{"staff_id": s.id, "name": s.name, "pin_hash": s.pin_hash} for s in rows]


TABLET_PORTRAIT_PATH = "/api/v1/tablets/portraits/{id}"


def portrait_entry(portrait_id: str | None) -> dict[str, str] | None:
    """Where the tablet downloads a portrait and what the file must hash to; None without one."""
    if not portrait_id:
        return None
    return {"url": TABLET_PORTRAIT_PATH.format(id=portrait_id), "sha256": portrait_id}


def portrait_ids(session: Session, tablet: Tablet) -> set[str]:
    """The portraits ``tablet`` may download: of the residents it serves and of their contacts
    that its configuration shows (approved, link active)."""
    found: set[str] = set()
    for resident in served_residents(session, tablet):
        if resident.portrait_id:
            found.add(resident.portrait_id)
        for approval in active_approvals(session, resident.id):
            if approval.contact.portrait_id:
                found.add(approval.contact.portrait_id)
    return found


def _contact_entry(approval: Approval) -> dict[str, Any]:
    """One contact of a resident in a tablet's configuration."""
    contact = approval.contact
    portrait = portrait_entry(contact.portrait_id)
    return {
        "id": contact.id,
        "approval_id": approval.id,
        "display_name": contact.display_name,
        "relation": contact.relation,
        # The contact's portrait for the tile (None: the tablet shows initials).
        "photo_url": portrait["url"] if portrait else None,
        "photo_sha256": portrait["sha256"] if portrait else None,
        "policy": approval.policy,
    }


def _resident_entry(
    resident: Resident, contacts: list[dict[str, Any]], photos: list[dict[str, Any]]
) -> dict[str, Any]:
    """One resident in a tablet's configuration."""
    return {
        "id": resident.id,
        "first_name": resident.first_name,
        "kind": resident.kind,
        "language": resident.language,
        # The resident's portrait on the picker ({url, sha256}; None: initials).
        "portrait": portrait_entry(resident.portrait_id),
        "contacts": contacts,
        # Approved family photos, newest first (docs/photos.md).
        "photos": photos,
        # A child's own PIN, checked offline by the tablet (kiosk.session); youth only,
        # "" until staff choose one.
        **({"pin_hash": resident.pin_hash or ""} if resident.kind == "youth" else {}),
    }


def _config(
    tablet: Tablet, home: Home, residents: list[dict[str, Any]], pins: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "revision": tablet.config_revision,
        "tablet": {"id": tablet.id, "name": tablet.name},
        "home": {"id": home.id, "name": home.name, "timezone": home.timezone},
        "residents": residents,
        # The way out of the kiosk works offline: the tablet checks a staff PIN against these.
        "staff_pins": pins,
    }


def build_config(session: Session, tablet: Tablet) -> dict[str, Any]:
    """The ``data`` of the tablet's retained ``config`` message (see docs/protocol.md).

    A few queries per resident: fine for one tablet after a change; a whole fleet goes through
    :func:`build_configs`, which gives the same result.
    """
    from backend.photos.service import photo_index

    residents = []
    for resident in served_residents(session, tablet):
        contacts = [_contact_entry(a) for a in active_approvals(session, resident.id)]
        photos = photo_index(session, resident, {str(c["id"]) for c in contacts})
        residents.append(_resident_entry(resident, contacts, photos))
    return _config(tablet, tablet.home, residents, staff_pins(session, tablet))


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def build_configs(session: Session, tablets: list[Tablet]) -> dict[str, dict[str, Any]]:
    """:func:`build_config` for many tablets at once, with a few queries per batch and home.

    The same result as :func:`build_config` tablet by tablet (tested in
    tests/integration/test_start_republish.py): homes, assignments, residents, approvals with
    their contacts and approved photos are each read in one query per 500 ids, the staff PINs
    once per home; a resident shown by several tablets is built once.
    """
    from backend.photos.service import INDEX_LIMIT, TABLET_PHOTO_PATH
    from backend.photos.service import _iso as iso

    if not tablets:
        return {}
    tablet_ids = sorted({t.id for t in tablets})
    home_ids = sorted({t.home_id for t in tablets})
    homes: dict[str, Home] = {}
    for chunk in _chunks(home_ids):
        homes.update((h.id, h) for h in session.scalars(select(Home).where(Home.id.in_(chunk))))
    assigned: dict[str, list[str]] = {}
    for chunk in _chunks(tablet_ids):
        for tablet_id, resident_id in session.execute(
            select(tablet_residents.c.tablet_id, tablet_residents.c.resident_id).where(
                tablet_residents.c.tablet_id.in_(chunk)
            )
        ):
            assigned.setdefault(tablet_id, []).append(resident_id)
    whole_homes = sorted({t.home_id for t in tablets if t.id not in assigned})
    assigned_ids = sorted({r for ids in assigned.values() for r in ids})
    residents: dict[str, Resident] = {}
    for chunk in _chunks(assigned_ids):
        residents.update(
            (r.id, r) for r in session.scalars(select(Resident).where(Resident.id.in_(chunk)))
        )
    by_home: dict[str, list[Resident]] = {home_id: [] for home_id in whole_homes}
    for chunk in _chunks(whole_homes):
        for resident in session.scalars(
            select(Resident).where(Resident.home_id.in_(chunk), Resident.active)
        ):
            residents.setdefault(resident.id, resident)
            by_home[resident.home_id].append(resident)
    # Served residents (active ones), in the order of served_residents().
    resident_ids = sorted(r.id for r in residents.values() if r.active)
    approvals: dict[str, list[Approval]] = {r: [] for r in resident_ids}
    for chunk in _chunks(resident_ids):
        for approval in session.scalars(
            select(Approval)
            .join(Contact)
            .where(
                Approval.resident_id.in_(chunk),
                Approval.status == ApprovalStatus.APPROVED.value,
                Contact.link_active.is_(True),
            )
            .options(contains_eager(Approval.contact))
            .order_by(Approval.decided_at, Approval.id)
        ):
            approvals[approval.resident_id].append(approval)
    contact_ids = {r: {a.contact_id for a in approvals[r]} for r in resident_ids}
    with_contacts = [r for r in resident_ids if contact_ids[r]]
    photos: dict[str, list[dict[str, Any]]] = {r: [] for r in resident_ids}
    for chunk in _chunks(with_contacts):
        for photo in session.scalars(
            select(Photo)
            .where(Photo.resident_id.in_(chunk), Photo.status == PhotoStatus.APPROVED.value)
            .order_by(Photo.decided_at.desc(), Photo.id)
        ):
            index = photos[photo.resident_id]
            if photo.contact_id not in contact_ids[photo.resident_id] or len(index) >= INDEX_LIMIT:
                continue
            # The same entry as backend.photos.service.photo_index (its contact is in the
            # session already, with the approvals: no query).
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
                    "added_at": iso(photo.decided_at or photo.created_at),
                }
            )
    entries = {
        r: _resident_entry(residents[r], [_contact_entry(a) for a in approvals[r]], photos[r])
        for r in resident_ids
    }
    pins: dict[str, list[dict[str, str]]] = {}
    configs: dict[str, dict[str, Any]] = {}
    for tablet in tablets:
        if tablet.id in assigned:
            served = [residents[r] for r in assigned[tablet.id] if residents[r].active]
        else:
            served = by_home[tablet.home_id]
        served = sorted(served, key=lambda r: (r.created_at, r.id))
        if tablet.home_id not in pins:
            pins[tablet.home_id] = staff_pins(session, tablet)
        configs[tablet.id] = _config(
            tablet,
            homes[tablet.home_id],
            [entries[r.id] for r in served],
            pins[tablet.home_id],
        )
    return configs


def bump_revisions(session: Session, tablet_ids: list[str]) -> None:
    for tablet_id in tablet_ids:
        tablet = session.get(Tablet, tablet_id)
        if tablet is not None:
            tablet.config_revision += 1
