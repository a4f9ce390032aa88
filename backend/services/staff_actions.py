"""What staff do from the dashboard, beyond the directory's basics.

Every function is keyword-only, writes one audit entry with its author, and returns its
:class:`~backend.services.decisions.Consequences` (revisions already bumped): the caller commits,
then hands them to the apply step (``backend.apply``), which republishes, ends calls, closes
pages and removes retired tablets from the broker.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Approval, ApprovalStatus, ResidentKind, Tablet, utcnow
from backend.services import audit, decisions, directory
from backend.services import tablets as tablet_service
from backend.services.decisions import Consequences
from backend.services.errors import NotFound, ServiceError
from kiosk import policy as call_policy


def get_approval(session: Session, approval_id: str) -> Approval:
    approval = session.get(Approval, approval_id)
    if approval is None:
        raise NotFound(f"Approval {approval_id} not found")
    return approval


def set_approval(
    *,
    session: Session,
    approval_id: str,
    policy: dict[str, Any],
    status: str,
    reason: str = "",
    by: str,
) -> Consequences:
    """Save a pair's policy and status together; a suspension or revocation needs a reason."""
    approval = get_approval(session, approval_id)
    try:
        call_policy.validate(policy)
    except call_policy.PolicyError as exc:
        raise ServiceError(f"Invalid policy: {exc}") from exc
    if status not in {s.value for s in ApprovalStatus}:
        raise ServiceError("The status is approved, suspended or revoked")
    reason = reason.strip()
    if status != ApprovalStatus.APPROVED.value and not reason:
        raise ServiceError("Say why this contact is suspended or revoked")
    before = {"status": approval.status, "policy": approval.policy, "reason": approval.reason}
    approval.policy = policy
    ends = status != ApprovalStatus.APPROVED.value and approval.status != status
    approval.status = status
    approval.reason = reason if status != ApprovalStatus.APPROVED.value else ""
    approval.decided_by = by
    approval.decided_at = utcnow()
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action=f"approval.{'update' if status == before['status'] else status}",
        target_type="approval",
        target_id=approval.id,
        home_id=approval.resident.home_id,
        details={
            "resident_id": approval.resident_id,
            "contact_id": approval.contact_id,
            "before": before,
            "after": {"status": status, "policy": policy, "reason": approval.reason},
        },
    )
    if status == ApprovalStatus.APPROVED.value and not ends:
        # Still approved, with a new policy: a call under way outside its new windows or in its
        # new quiet hours ends too (the daily limits only stop new calls: none counted here).
        now_allowed = call_policy.evaluate(policy, utcnow(), approval.resident.home.timezone)
        ends = not now_allowed.allowed
    changed = decisions.residents_changed(session, [approval.resident_id])
    return (changed | decisions.end_calls(approval_id=approval.id)) if ends else changed


def create_approval(
    *,
    session: Session,
    resident_id: str,
    contact_id: str | None,
    new_contact_name: str = "",
    new_contact_relation: str = "",
    policy: dict[str, Any],
    by: str,
) -> tuple[Approval, Consequences]:
    """Approve an existing contact of the resident's home, or a new one created here."""
    resident = directory.get_resident(session, resident_id)
    if contact_id:
        contact = directory.get_contact(session, contact_id)
    else:
        if not new_contact_name.strip():
            raise ServiceError("Choose a contact, or give the new contact's name")
        contact = directory.add_contact(
            session=session,
            home_id=resident.home_id,
            display_name=new_contact_name,
            relation=new_contact_relation,
            by=by,
        )
    approval = directory.approve(
        session=session, resident_id=resident.id, contact_id=contact.id, by=by, policy=policy
    )
    return approval, decisions.residents_changed(session, [resident.id])


def approve_pair(
    *, session: Session, resident_id: str, contact_id: str, policy: dict[str, Any] | None, by: str
) -> tuple[Approval, Consequences]:
    """Approve (or approve again) the pair: its tablets show the contact at once."""
    approval = directory.approve(
        session=session, resident_id=resident_id, contact_id=contact_id, by=by, policy=policy
    )
    return approval, decisions.residents_changed(session, [approval.resident_id])


def revoke_pair(
    *, session: Session, resident_id: str, contact_id: str, reason: str, by: str
) -> tuple[Approval, Consequences]:
    """Revoke the pair: a call of theirs under way ends, the tablets drop the contact."""
    approval = directory.revoke(
        session=session, resident_id=resident_id, contact_id=contact_id, by=by, reason=reason
    )
    changed = decisions.residents_changed(session, [approval.resident_id])
    return approval, changed | decisions.end_calls(approval_id=approval.id)


def _contact_residents(session: Session, contact_id: str) -> list[str]:
    return list(
        session.scalars(select(Approval.resident_id).where(Approval.contact_id == contact_id))
    )


def revoke_link(*, session: Session, contact_id: str, by: str) -> Consequences:
    """The personal link stops working at once; the contact leaves every tablet."""
    contact = directory.get_contact(session, contact_id)
    contact.link_active = False
    audit.record(
        session=session,
        actor=by,
        action="contact.link_revoke",
        target_type="contact",
        target_id=contact.id,
        home_id=contact.home_id,
    )
    session.flush()
    return (
        decisions.residents_changed(session, _contact_residents(session, contact.id))
        | decisions.end_calls(contact_id=contact.id)
        | decisions.close_pages(contact.id)
    )


def regenerate_link(*, session: Session, contact_id: str, by: str) -> Consequences:
    """A new personal link; the old one stops working (a lost phone, a forwarded message)."""
    contact = directory.get_contact(session, contact_id)
    was_active = contact.link_active
    contact.link_token = secrets.token_urlsafe(24)
    contact.link_active = True
    audit.record(
        session=session,
        actor=by,
        action="contact.link_regenerate",
        target_type="contact",
        target_id=contact.id,
        home_id=contact.home_id,
    )
    session.flush()
    # The old link's page may be open, even in a call: end the call and close the page at once
    # (the relative opens the new link). Tablets change only if the link was off (revoked).
    changed = (
        decisions.residents_changed(session, _contact_residents(session, contact.id))
        if not was_active
        else decisions.NOTHING
    )
    return changed | decisions.end_calls(contact_id=contact.id) | decisions.close_pages(contact.id)


def rename_tablet(*, session: Session, tablet_id: str, name: str, by: str) -> Consequences:
    tablet = tablet_service.get_tablet(session, tablet_id)
    name = name.strip()
    if not name:
        raise ServiceError("A tablet needs a name (e.g. 'Salon, 1er étage')")
    if len(name) > 100:
        raise ServiceError("A tablet's name is at most 100 characters")
    old = tablet.name
    tablet.name = name
    audit.record(
        session=session,
        actor=by,
        action="tablet.rename",
        target_type="tablet",
        target_id=tablet.id,
        home_id=tablet.home_id,
        details={"before": old, "after": name},
    )
    session.flush()
    return decisions.republish(session, [tablet.id])


def retire_tablet(*, session: Session, tablet_id: str, by: str) -> Consequences:
    """The tablet loses its broker account and its retained configuration; its calls end.

    Retiring again removes what may be left on the broker (it was down the first time).
    """
    tablet = tablet_service.get_tablet(session, tablet_id)
    if tablet.retired_at is None:
        tablet_service.retire(session=session, tablet_id=tablet.id, by=by)
    return decisions.retired([tablet.id])


def add_tablet_with_code(
    *, session: Session, home_id: str, name: str, secret_key: str, ttl: timedelta, by: str
) -> tablet_service.IssuedCode:
    tablet = tablet_service.add_tablet(session=session, home_id=home_id, name=name, by=by)
    return tablet_service.issue_code(
        session=session, tablet_id=tablet.id, secret_key=secret_key, ttl=ttl, by=by
    )


def issue_code(
    *, session: Session, tablet_id: str, secret_key: str, ttl: timedelta, by: str
) -> tablet_service.IssuedCode:
    return tablet_service.issue_code(
        session=session, tablet_id=tablet_id, secret_key=secret_key, ttl=ttl, by=by
    )


def set_resident_pin(*, session: Session, resident_id: str, pin: str, by: str) -> Consequences:
    """A child's own PIN on the shared tablet (4 digits); keeps their contacts private."""
    from backend.auth.passwords import hash_password

    resident = directory.get_resident(session, resident_id)
    if resident.kind != ResidentKind.YOUTH.value:
        raise ServiceError("Only a child has a PIN of their own")
    pin = pin.strip()
    if len(pin) != 4 or not pin.isdigit():
        raise ServiceError("The PIN is 4 digits")
    resident.pin_hash = hash_password(pin)
    audit.record(
        session=session,
        actor=by,
        action="resident.pin_set",
        target_type="resident",
        target_id=resident.id,
        home_id=resident.home_id,
    )
    session.flush()
    return decisions.residents_changed(session, [resident.id])


def end_call(*, session: Session, call_id: str, approval_id: str, by: str) -> Consequences:
    """Staff end a call from the dashboard: the audit log says who, the call log how."""
    approval = session.get(Approval, approval_id)
    audit.record(
        session=session,
        actor=by,
        action="call.end",
        target_type="call",
        target_id=call_id,
        home_id=approval.resident.home_id if approval is not None else None,
        details={"approval_id": approval_id},
    )
    return decisions.end_calls(call_id=call_id)


def tablet_home(session: Session, tablet_id: str) -> str:
    tablet = session.get(Tablet, tablet_id)
    if tablet is None:
        raise NotFound(f"Tablet {tablet_id} not found")
    return tablet.home_id
