"""Homes, residents, contacts and the approvals that link them."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import (
    Approval,
    ApprovalStatus,
    Contact,
    Home,
    Resident,
    ResidentKind,
    utcnow,
)
from backend.services import audit
from backend.services.errors import Conflict, NotFound, ServiceError
from kiosk import policy as call_policy


def get_home(session: Session, home_id: str) -> Home:
    home = session.get(Home, home_id)
    if home is None:
        raise NotFound(f"Home {home_id} not found")
    return home


def get_resident(session: Session, resident_id: str) -> Resident:
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise NotFound(f"Resident {resident_id} not found")
    return resident


def get_contact(session: Session, contact_id: str) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"Contact {contact_id} not found")
    return contact


def add_home(*, session: Session, name: str, timezone: str = "Europe/Paris", by: str) -> Home:
    if not name.strip():
        raise ServiceError("A home needs a name")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ServiceError(f"Unknown time zone {timezone!r} (e.g. Europe/Paris)") from exc
    home = Home(name=name.strip(), timezone=timezone, slug=_free_slug(session, name))
    session.add(home)
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="home.add",
        target_type="home",
        target_id=home.id,
        home_id=home.id,
        details={"name": home.name, "timezone": timezone},
    )
    return home


def slugify(text: str) -> str:
    """'Résidence Les Tilleuls' -> 'residence-les-tilleuls'."""
    import re
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:50] or "home"


def _free_slug(session: Session, name: str) -> str:
    base = slugify(name)
    slug, n = base, 1
    while session.scalars(select(Home.id).where(Home.slug == slug)).first() is not None:
        n += 1
        slug = f"{base}-{n}"
    return slug


def add_resident(
    *,
    session: Session,
    home_id: str,
    first_name: str,
    last_name: str = "",
    kind: str = ResidentKind.SENIOR.value,
    language: str = "fr",
    by: str,
) -> Resident:
    home = get_home(session, home_id)
    if kind not in {k.value for k in ResidentKind}:
        raise ServiceError("A resident is either 'senior' or 'youth'")
    if language not in {"fr", "en"}:
        raise ServiceError("Language must be 'fr' or 'en'")
    if not first_name.strip():
        raise ServiceError("A resident needs a first name")
    resident = Resident(
        home_id=home.id,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        kind=kind,
        language=language,
    )
    session.add(resident)
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="resident.add",
        target_type="resident",
        target_id=resident.id,
        home_id=home.id,
        details={"kind": kind},
    )
    return resident


def add_contact(
    *,
    session: Session,
    home_id: str,
    display_name: str,
    relation: str = "",
    email: str = "",
    by: str,
) -> Contact:
    home = get_home(session, home_id)
    if not display_name.strip():
        raise ServiceError("A contact needs a name")
    contact = Contact(
        home_id=home.id, display_name=display_name.strip(), relation=relation.strip(), email=email
    )
    session.add(contact)
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="contact.add",
        target_type="contact",
        target_id=contact.id,
        home_id=home.id,
    )
    return contact


def find_approval(session: Session, resident_id: str, contact_id: str) -> Approval | None:
    return session.scalars(
        select(Approval).where(
            Approval.resident_id == resident_id, Approval.contact_id == contact_id
        )
    ).one_or_none()


def approve(
    *,
    session: Session,
    resident_id: str,
    contact_id: str,
    by: str,
    policy: dict[str, Any] | None = None,
) -> Approval:
    """Approve the pair (or re-approve a suspended or revoked one)."""
    resident = get_resident(session, resident_id)
    contact = get_contact(session, contact_id)
    if policy is not None:
        try:
            call_policy.validate(policy)
        except call_policy.PolicyError as exc:
            raise ServiceError(f"Invalid policy: {exc}") from exc
    if resident.home_id != contact.home_id:
        # A contact belongs to one home's directory: approving across homes would let one
        # home's staff grant access to another home's resident.
        raise Conflict("The resident and the contact belong to different homes")
    approval = find_approval(session, resident.id, contact.id)
    if approval is None:
        approval = Approval(resident_id=resident.id, contact_id=contact.id, policy=policy or {})
        session.add(approval)
    elif policy is not None:
        approval.policy = policy
    approval.status = ApprovalStatus.APPROVED.value
    approval.reason = ""
    approval.decided_by = by
    approval.decided_at = utcnow()
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="approval.approve",
        target_type="approval",
        target_id=approval.id,
        home_id=resident.home_id,
        details={"resident_id": resident.id, "contact_id": contact.id, "policy": approval.policy},
    )
    return approval


def revoke(
    *, session: Session, resident_id: str, contact_id: str, by: str, reason: str = ""
) -> Approval:
    resident = get_resident(session, resident_id)
    approval = find_approval(session, resident.id, contact_id)
    if approval is None:
        raise NotFound("This contact was never approved for this resident")
    approval.status = ApprovalStatus.REVOKED.value
    approval.reason = reason
    approval.decided_by = by
    approval.decided_at = utcnow()
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="approval.revoke",
        target_type="approval",
        target_id=approval.id,
        home_id=resident.home_id,
        details={"resident_id": resident.id, "contact_id": contact_id, "reason": reason},
    )
    return approval


def active_approvals(session: Session, resident_id: str) -> list[Approval]:
    return list(
        session.scalars(
            select(Approval)
            .join(Contact)
            .where(
                Approval.resident_id == resident_id,
                Approval.status == ApprovalStatus.APPROVED.value,
                Contact.link_active.is_(True),
            )
            .order_by(Approval.decided_at, Approval.id)
        )
    )


def contact_by_token(session: Session, token: str) -> Contact | None:
    if not token or len(token) > 64:
        return None
    return session.scalars(
        select(Contact).where(Contact.link_token == token, Contact.link_active.is_(True))
    ).one_or_none()


def personal_link(public_url: str, contact: Contact) -> str:
    return f"{public_url.rstrip('/')}/f/{contact.link_token}"
