"""Staff accounts: create, assign to homes, set the supervision PIN, disable. All audited.

A change that reaches the tablets (the PIN verifiers in every configuration of the member's
homes, or of all homes for an administrator) returns its
:class:`~backend.services.decisions.Consequences` for the apply step (``backend.apply``).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.auth import passwords, sessions
from backend.models import Home, Staff, StaffRole
from backend.services import audit, decisions
from backend.services.decisions import Consequences
from backend.services.errors import Conflict, NotFound, ServiceError


def find_staff(session: Session, ref: str) -> Staff:
    """A staff member by id or by email."""
    staff = session.get(Staff, ref) or session.scalar(
        select(Staff).where(func.lower(Staff.email) == ref.strip().lower())
    )
    if staff is None:
        raise NotFound(f"No staff member {ref!r}.")
    return staff


def add_staff(
    *,
    session: Session,
    email: str,
    name: str,
    password: str,
    role: str = StaffRole.STAFF.value,
    home_ids: list[str] | None = None,
    language: str = "fr",
    by: str,
) -> Staff:
    email = email.strip().lower()
    if "@" not in email or len(email) > 200:
        raise ServiceError("Give a valid email address.")
    if not name.strip():
        raise ServiceError("A staff member needs a name.")
    if role not in {r.value for r in StaffRole}:
        raise ServiceError("The role is admin or staff.")
    passwords.check_new_password(password)
    if session.scalar(select(Staff).where(func.lower(Staff.email) == email)) is not None:
        raise Conflict(f"A staff member already uses {email}.")
    homes = [_home(session, home_id) for home_id in home_ids or []]
    staff = Staff(
        email=email,
        name=name.strip(),
        password_hash=passwords.hash_password(password),
        role=role,
        language=language,
        homes=homes,
    )
    session.add(staff)
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="staff.add",
        target_type="staff",
        target_id=staff.id,
        details={"email": email, "role": role, "homes": [h.id for h in homes]},
    )
    return staff


def assign_home(*, session: Session, staff: Staff, home_id: str, by: str) -> Consequences:
    """Give ``staff`` access to a home: with a PIN, its tablets' staff screen opens for them."""
    home = _home(session, home_id)
    if home not in staff.homes:
        staff.homes.append(home)
    audit.record(
        session=session,
        actor=by,
        action="staff.assign",
        target_type="staff",
        target_id=staff.id,
        home_id=home.id,
    )
    return decisions.staff_pins_changed(session, staff)


def set_password(*, session: Session, staff: Staff, password: str, by: str) -> Consequences:
    """A new dashboard password; their sessions end (tablets know nothing of passwords)."""
    passwords.check_new_password(password)
    staff.password_hash = passwords.hash_password(password)
    sessions.end_all_sessions(session=session, staff_id=staff.id)
    audit.record(
        session=session, actor=by, action="staff.password", target_type="staff", target_id=staff.id
    )
    return decisions.NOTHING


def set_pin(*, session: Session, staff: Staff, pin: str, by: str) -> Consequences:
    """The PIN that opens a tablet's staff screen and supervised calls: the old one stops
    working on every tablet of their homes."""
    staff.pin_hash = passwords.hash_pin(pin)
    audit.record(
        session=session, actor=by, action="staff.pin", target_type="staff", target_id=staff.id
    )
    return decisions.staff_pins_changed(session, staff)


def disable(*, session: Session, staff: Staff, by: str) -> Consequences:
    """No more logins, every open session ends now, and their PIN leaves every tablet."""
    staff.active = False
    sessions.end_all_sessions(session=session, staff_id=staff.id)
    audit.record(
        session=session, actor=by, action="staff.disable", target_type="staff", target_id=staff.id
    )
    return decisions.staff_pins_changed(session, staff)


def staff_json(staff: Staff) -> dict[str, object]:
    return {
        "id": staff.id,
        "email": staff.email,
        "name": staff.name,
        "role": staff.role,
        "active": staff.active,
        "language": staff.language,
        "homes": sorted(h.id for h in staff.homes),
        "has_pin": bool(staff.pin_hash),
        "last_login_at": staff.last_login_at.isoformat() if staff.last_login_at else None,
    }


def _home(session: Session, home_id: str) -> Home:
    home = session.get(Home, home_id)
    if home is None:
        raise NotFound(f"Home {home_id} not found")
    return home
