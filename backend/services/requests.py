"""Contact requests: the queue of people asking to be linked with a resident, and its decisions.

Two sources fill the queue: a child on the tablet ("Demander un contact": who, and the relation,
picked from big buttons; the ``contact_request`` tablet event), and a relative on the home's
public request page (``/h/{slug}/demande``). Staff approve (which creates the contact if
needed and approves the pair with a policy) or refuse (with a note). Every step is audited.

Nothing here publishes: after ``approve_request`` the caller republishes the configurations of
``tablets.tablets_serving(session, approval.resident_id)``, as for any approval.

``requester_name`` is, for both sources, the person to be linked as the requester named them:
the relative's own name, or who the child asked for ("Maman"). Validation messages are English
sentences that are also msgids of the ``liens-web`` catalogue, so a page can translate them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.i18n import translations
from backend.models import (
    Approval,
    ContactRequest,
    Home,
    RequestStatus,
    Resident,
    ResidentKind,
    Tablet,
    utcnow,
)
from backend.services import audit, directory
from backend.services.errors import Conflict, NotFound, ServiceError
from backend.services.tablets import served_residents

log = logging.getLogger(__name__)

SOURCE_TABLET = "tablet"
SOURCE_RELATIVE = "relative"

MAX_NAME = 200
MAX_RELATION = 100
MAX_MESSAGE = 2000
MAX_EMAIL = 200
MAX_PHONE = 50
MAX_NOTE = 2000

# The relations a child picks on the tablet: key -> the label's msgid (the tablet sends the
# label's msgid as ``who``). French labels are in both catalogues.
TABLET_RELATIONS: dict[str, str] = {
    "mother": "Mum",
    "father": "Dad",
    "grandmother": "Grandma",
    "grandfather": "Grandpa",
    "brother": "Brother",
    "sister": "Sister",
    "aunt": "Aunt",
    "uncle": "Uncle",
    "friend": "A friend",
    "other": "Someone else",
}

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^\+?[0-9 .()/-]+$")


class RequestInvalid(ServiceError):
    """A relative's form that cannot be stored; ``problems`` are sentences (msgids), in order."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


def relation_label(relation: str, language: str = "fr") -> str:
    """A tablet relation key ("mother") as a person reads it ("Maman"); other text as given."""
    msgid = TABLET_RELATIONS.get(relation)
    if msgid is None:
        return relation
    return translations(language).gettext(msgid)


def _tablet_request_id(event_id: str) -> str:
    # The event id (up to 64 characters) is the deduplication key; the column holds 64.
    if len(event_id) <= 62:
        return "t-" + event_id
    return "t-" + hashlib.sha256(event_id.encode()).hexdigest()[:62]


def get_request(session: Session, request_id: str) -> ContactRequest:
    request = session.get(ContactRequest, request_id)
    if request is None:
        raise NotFound("This request does not exist (any more)")
    return request


def create_from_tablet(
    *,
    session: Session,
    tablet_id: str,
    event_id: str,
    resident_id: str,
    who: str,
    relation: str,
) -> ContactRequest | None:
    """The request a child made on ``tablet_id``; ``None`` (logged) when it cannot be queued.

    Idempotent: the event id is the request's id, so a redelivered event adds nothing (the
    request already stored is returned). A resident the tablet does not serve, an unknown tablet
    or a non-youth resident is dropped: the tablet is not trusted with another home's residents.
    """
    request_id = _tablet_request_id(event_id)
    existing = session.get(ContactRequest, request_id)
    if existing is not None:
        return existing
    tablet = session.get(Tablet, tablet_id)
    if tablet is None or tablet.retired_at is not None:
        log.warning(
            "contact request %s from unknown or retired tablet %s dropped", event_id, tablet_id
        )
        return None
    resident = next((r for r in served_residents(session, tablet) if r.id == resident_id), None)
    if resident is None:
        log.warning(
            "contact request %s: tablet %s does not serve resident %r; dropped",
            event_id,
            tablet_id,
            resident_id,
        )
        return None
    if resident.kind != ResidentKind.YOUTH.value:
        log.warning("contact request %s for a resident who is not a child; dropped", event_id)
        return None
    relation = relation.strip()[:MAX_RELATION]
    request = ContactRequest(
        id=request_id,
        home_id=resident.home_id,
        resident_id=resident.id,
        source=SOURCE_TABLET,
        # Who the child asked for, in the child's language ("Maman"): what staff read.
        requester_name=translations(resident.language).gettext(who.strip())[:MAX_NAME],
        relation=relation,
        resident_name_given=resident.first_name,
    )
    session.add(request)
    session.flush()
    audit.record(
        session=session,
        actor=f"tablet:{tablet_id}",
        action="request.create",
        target_type="contact_request",
        target_id=request.id,
        home_id=request.home_id,
        details={"source": SOURCE_TABLET, "resident_id": resident.id, "relation": relation},
    )
    return request


def _clean(value: str) -> str:
    return " ".join(value.split())


def create_from_relative(
    *,
    session: Session,
    home_slug: str,
    requester_name: str,
    relation: str,
    resident_name_given: str,
    message: str,
    email: str,
    phone: str,
) -> ContactRequest:
    """A relative's request from the public page; :class:`RequestInvalid` lists what to fix.

    The resident's name is stored as given and never matched here: the page must answer the
    same whether or not such a resident lives at the home.
    """
    home = session.scalars(select(Home).where(Home.slug == home_slug)).one_or_none()
    if home is None:
        raise NotFound("There is no such home")
    requester_name, relation = _clean(requester_name), _clean(relation)
    resident_name_given = _clean(resident_name_given)
    message, email, phone = message.strip(), email.strip().lower(), _clean(phone)
    problems = []
    if not requester_name:
        problems.append("Please give your name.")
    elif len(requester_name) > MAX_NAME:
        problems.append("Your name is too long.")
    if len(relation) > MAX_RELATION:
        problems.append("The relation is too long.")
    if not resident_name_given:
        problems.append("Please give the name of the resident you would like to be in touch with.")
    elif len(resident_name_given) > MAX_NAME:
        problems.append("The resident's name is too long.")
    if len(message) > MAX_MESSAGE:
        problems.append("Your message is too long (at most 2000 characters).")
    if not email and not phone:
        problems.append(
            "Please give an email address or a phone number, so that the staff can answer you."
        )
    if email and (len(email) > MAX_EMAIL or not EMAIL_RE.match(email)):
        problems.append("This email address does not look right.")
    if phone and (
        len(phone) > MAX_PHONE
        or not PHONE_RE.match(phone)
        or not 6 <= sum(c.isdigit() for c in phone) <= 20
    ):
        problems.append("This phone number does not look right.")
    if problems:
        raise RequestInvalid(problems)
    request = ContactRequest(
        home_id=home.id,
        source=SOURCE_RELATIVE,
        requester_name=requester_name,
        relation=relation,
        resident_name_given=resident_name_given,
        message=message,
        email=email,
        phone=phone,
    )
    session.add(request)
    session.flush()
    audit.record(
        session=session,
        actor="relative:public-page",
        action="request.create",
        target_type="contact_request",
        target_id=request.id,
        home_id=home.id,
        details={"source": SOURCE_RELATIVE, "requester_name": requester_name},
    )
    return request


def pending_requests(session: Session, home_ids: set[str] | None) -> list[ContactRequest]:
    """The queue, oldest first: of ``home_ids``, or of every home when ``None`` (admin)."""
    query = select(ContactRequest).where(ContactRequest.status == RequestStatus.PENDING.value)
    if home_ids is not None:
        if not home_ids:
            return []
        query = query.where(ContactRequest.home_id.in_(home_ids))
    return list(session.scalars(query.order_by(ContactRequest.created_at, ContactRequest.id)))


def suggested_residents(session: Session, request: ContactRequest) -> list[Resident]:
    """For a relative's request: the home's active residents whose first name matches the name
    given (staff still choose; this only puts the likely ones first)."""
    given = {w.casefold() for w in request.resident_name_given.replace("-", " ").split()}
    residents = session.scalars(
        select(Resident)
        .where(Resident.home_id == request.home_id, Resident.active.is_(True))
        .order_by(Resident.first_name, Resident.id)
    )
    return [r for r in residents if r.first_name.casefold() in given]


def _pending(session: Session, request_id: str) -> ContactRequest:
    request = get_request(session, request_id)
    if request.status != RequestStatus.PENDING.value:
        raise Conflict("This request has already been decided")
    return request


def approve_request(
    *,
    session: Session,
    request_id: str,
    by: str,
    policy: dict[str, Any] | None,
    resident_id: str | None = None,
    display_name: str | None = None,
) -> Approval:
    """Approve a pending request: create its contact (unless it has one), approve the pair.

    A tablet request is for the child who made it; a relative's needs ``resident_id`` (staff
    pick the resident). ``display_name`` defaults to the requester's name, else the relation.
    Returns the approval: republish ``tablets_serving(session, approval.resident_id)``.
    """
    request = _pending(session, request_id)
    if request.resident_id is not None:
        if resident_id is not None and resident_id != request.resident_id:
            raise Conflict("A child's request can only link that child")
        resident_id = request.resident_id
    if not resident_id:
        raise ServiceError("Choose the resident this person will be in touch with")
    resident = directory.get_resident(session, resident_id)
    if resident.home_id != request.home_id:
        raise Conflict("This resident does not live in the home of the request")
    if request.contact_id:
        contact = directory.get_contact(session, request.contact_id)
    else:
        relation = relation_label(request.relation, resident.language)
        name = _clean(display_name or "") or request.requester_name or relation
        if len(name) > 100:
            raise ServiceError("The contact's name is too long (at most 100 characters)")
        contact = directory.add_contact(
            session=session,
            home_id=request.home_id,
            display_name=name,
            relation=relation[:100],
            email=request.email,
            by=by,
        )
    approval = directory.approve(
        session=session, resident_id=resident.id, contact_id=contact.id, by=by, policy=policy
    )
    request.resident_id = resident.id
    request.contact_id = contact.id
    request.status = RequestStatus.APPROVED.value
    request.decided_by = by
    request.decided_at = utcnow()
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="request.approve",
        target_type="contact_request",
        target_id=request.id,
        home_id=request.home_id,
        details={
            "resident_id": resident.id,
            "contact_id": contact.id,
            "approval_id": approval.id,
        },
    )
    return approval


def refuse_request(*, session: Session, request_id: str, by: str, note: str) -> ContactRequest:
    """Refuse a pending request; ``note`` (for staff, never sent to the requester) says why."""
    request = _pending(session, request_id)
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ServiceError("The note is too long (at most 2000 characters)")
    request.status = RequestStatus.REFUSED.value
    request.decided_by = by
    request.decided_at = utcnow()
    request.decision_note = note
    session.flush()
    audit.record(
        session=session,
        actor=by,
        action="request.refuse",
        target_type="contact_request",
        target_id=request.id,
        home_id=request.home_id,
        details={"note": note},
    )
    return request
