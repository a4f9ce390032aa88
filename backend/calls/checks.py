"""What the backend checks before relaying a call: the pair, its policy now, a tablet to ring.

Synchronous database functions, called from the hub through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import (
    Approval,
    ApprovalStatus,
    Call,
    Contact,
    Resident,
    Staff,
    StaffRole,
    Tablet,
    utcnow,
)
from backend.services import audit
from backend.services.tablets import tablets_serving
from kiosk import policy as call_policy
from kiosk.calls.model import CallDirection, EndedBy, EndReason, outcome_for


@dataclass
class PairCheck:
    """The verdict on one (resident, contact) pair, now."""

    allowed: bool
    # "ok", EndReason.POLICY (not approved / outside window / quiet / daily limit), "offline"
    reason: str
    detail: str = ""  # the policy's own reason: outside_window, quiet_hours, daily_limit, …
    next_allowed: datetime | None = None
    approval_id: str = ""
    resident_id: str = ""
    resident_first_name: str = ""
    contact_id: str = ""
    contact_name: str = ""
    timezone: str = "Europe/Paris"
    tablet_ids: list[str] = field(default_factory=list)  # online tablets serving the resident
    supervised: bool = False  # a staff PIN must be typed on the tablet before the call starts
    max_duration_min: int | None = None  # the backend ends a connected call at this limit
    home_id: str = ""


def calls_today(session: Session, approval_id: str, timezone: str, now: datetime) -> int:
    """Answered calls of this pair since local midnight, in the home's time zone."""
    tz = ZoneInfo(timezone)
    midnight = datetime.combine(now.astimezone(tz).date(), time(0, 0), tzinfo=tz)
    count = session.scalar(
        select(func.count())
        .select_from(Call)
        .where(
            Call.approval_id == approval_id, Call.answer_at.is_not(None), Call.answer_at >= midnight
        )
    )
    return int(count or 0)


def check_pair(
    session: Session, resident_id: str, contact_id: str, now: datetime | None = None
) -> PairCheck:
    now = now or utcnow()
    approval = session.scalars(
        select(Approval).where(
            Approval.resident_id == resident_id, Approval.contact_id == contact_id
        )
    ).one_or_none()
    contact = session.get(Contact, contact_id)
    resident = session.get(Resident, resident_id)
    if (
        approval is None
        or contact is None
        or resident is None
        or approval.status != ApprovalStatus.APPROVED.value
        or not contact.link_active
        or not resident.active
    ):
        return PairCheck(
            False, EndReason.POLICY, "not_approved", resident_id=resident_id, contact_id=contact_id
        )
    tz = resident.home.timezone
    base = PairCheck(
        True,
        "ok",
        approval_id=approval.id,
        resident_id=resident.id,
        resident_first_name=resident.first_name,
        contact_id=contact.id,
        contact_name=contact.display_name,
        timezone=tz,
        home_id=resident.home_id,
    )
    rules = approval.policy if isinstance(approval.policy, dict) else {}
    base.supervised = rules.get("supervised") is True
    limit = rules.get("max_duration_min")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        base.max_duration_min = limit
    decision = call_policy.evaluate(
        approval.policy, now, tz, calls_today(session, approval.id, tz, now)
    )
    if not decision.allowed:
        base.allowed, base.reason, base.detail = False, EndReason.POLICY, decision.reason
        base.next_allowed = decision.next_allowed
        return base
    online = []
    for tablet_id in tablets_serving(session, resident.id):
        tablet = session.get(Tablet, tablet_id)
        if tablet is not None and tablet.online and tablet.enrolled_at is not None:
            online.append(tablet_id)
    base.tablet_ids = online
    if not online:
        base.allowed, base.reason, base.detail = False, "offline", "offline"
    return base


def check_approval(session: Session, approval_id: str, now: datetime | None = None) -> PairCheck:
    approval = session.get(Approval, approval_id)
    if approval is None:
        return PairCheck(False, EndReason.POLICY, "not_approved")
    return check_pair(session, approval.resident_id, approval.contact_id, now)


def approved_residents(session: Session, contact_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Approval.resident_id).where(
                Approval.contact_id == contact_id, Approval.status == ApprovalStatus.APPROVED.value
            )
        )
    )


# -- supervised calls -------------------------------------------------------------------------


def _verify_pin(pin_hash: str, pin: str) -> bool:
    try:
        from backend.auth.passwords import verify_pin
    except ImportError:  # pragma: no cover - before the helpers existed
        from argon2 import PasswordHasher
        from argon2.exceptions import Argon2Error, InvalidHashError

        try:
            return PasswordHasher().verify(pin_hash, pin)
        except (Argon2Error, InvalidHashError):
            return False
    try:
        return verify_pin(pin_hash, pin)
    except Exception:  # an unreadable hash is a wrong PIN, never a crash
        return False


def supervisor_for(session: Session, home_id: str, pin: str) -> Staff | None:
    """The active member of staff of this home (or an admin) whose supervision PIN is ``pin``.

    Every candidate's hash is checked (argon2, deliberately slow), so the time taken says nothing
    about which one matched.
    """
    if not pin.isdigit() or not 4 <= len(pin) <= 8:
        return None
    found = None
    for staff in session.scalars(select(Staff).where(Staff.active.is_(True), Staff.pin_hash != "")):
        serves = staff.role == StaffRole.ADMIN.value or any(h.id == home_id for h in staff.homes)
        if serves and _verify_pin(staff.pin_hash, pin) and found is None:
            found = staff
    return found


def log_supervision(
    session: Session,
    *,
    call_id: str,
    approval_id: str,
    home_id: str,
    tablet_id: str,
    staff: Staff | None,
    attempt: int,
) -> None:
    """Audit one PIN typed on a tablet; a right one also goes on the call's row."""
    if staff is not None:
        call = session.get(Call, call_id)
        if call is not None:
            call.supervised_by = staff.id
    audit.record(
        session=session,
        actor=f"staff:{staff.email}" if staff is not None else f"tablet:{tablet_id}",
        action="call.supervised" if staff is not None else "call.supervision_refused",
        target_type="call",
        target_id=call_id,
        home_id=home_id,
        details={"approval_id": approval_id, "tablet_id": tablet_id, "attempt": attempt},
    )


def log_supervised_by(session: Session, call_id: str, staff_id: str) -> None:
    call = session.get(Call, call_id)
    if call is not None:
        call.supervised_by = staff_id


# -- the call log -----------------------------------------------------------------------------


def log_created(
    session: Session,
    *,
    call_id: str,
    direction: str,
    check: PairCheck,
    tablet_id: str | None,
) -> None:
    session.add(
        Call(
            id=call_id,
            direction=direction,
            resident_id=check.resident_id,
            contact_id=check.contact_id,
            approval_id=check.approval_id,
            tablet_id=tablet_id,
        )
    )


def log_ringing(session: Session, call_id: str) -> None:
    call = session.get(Call, call_id)
    if call is not None and call.ring_at is None:
        call.ring_at = utcnow()


def log_answered(session: Session, call_id: str, tablet_id: str | None) -> None:
    call = session.get(Call, call_id)
    if call is not None:
        call.answer_at = call.answer_at or utcnow()
        if tablet_id:
            call.tablet_id = tablet_id


def log_ended(session: Session, call_id: str, reason: EndReason, ended_by: EndedBy) -> Call | None:
    """The hub ended the call: write its outcome (backend/calls/calllog.py: the tablet's
    ``call_ended`` may have closed the row first; the hub then only adds who ended it)."""
    call = session.get(Call, call_id)
    if call is None:
        return call
    if call.end_at is not None:
        if call.ended_by is None:  # closed from the tablet's account, which does not say who
            call.ended_by = ended_by
        return call
    call.end_at = utcnow()
    if call.answer_at is not None:
        call.duration_s = max(0, round((call.end_at - call.answer_at).total_seconds()))
    call.outcome = outcome_for(reason, answered=call.answer_at is not None)
    call.ended_by = ended_by
    return call


def missed_for_contact(session: Session, contact_id: str, mark_seen: bool = True) -> list[Call]:
    """Calls from residents this relative missed and has not been shown yet (last 30 days)."""
    since = utcnow() - timedelta(days=30)
    calls = list(
        session.scalars(
            select(Call)
            .where(
                Call.contact_id == contact_id,
                Call.direction == CallDirection.FROM_RESIDENT,
                Call.outcome.in_([EndReason.MISSED, EndReason.UNAVAILABLE]),
                Call.seen_by_contact_at.is_(None),
                Call.created_at >= since,
            )
            .order_by(Call.created_at)
        )
    )
    if mark_seen:
        for call in calls:
            call.seen_by_contact_at = utcnow()
    return calls
