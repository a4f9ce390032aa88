"""A home: its residents and their approvals, its contacts and their links, its tablets."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import BackendDep, SessionDep
from backend.auth.deps import CsrfChecked, CurrentStaff, check_home_access, home_for
from backend.dashboard.common import (
    actor,
    apply,
    fragment,
    is_htmx,
    language,
    local_time,
    page,
    public_url,
    qr_svg,
    see_other,
    tr,
)
from backend.models import Approval, Contact, Home, Resident, Staff, Tablet
from backend.services import decisions, directory, policies, staff_actions
from backend.services import tablets as tablet_service
from backend.services.errors import ServiceError

router = APIRouter()

STATUS_ORDER = {"approved": 0, "suspended": 1, "revoked": 2}


def contact_view(request: Request, contact: Contact) -> dict[str, Any]:
    t = tr(request)
    url = directory.personal_link(public_url(request.app.state.backend), contact)
    approved = sorted(a.resident.first_name for a in contact.approvals if a.status == "approved")
    return {
        "contact": contact,
        "url": url if contact.link_active else "",
        "qr": qr_svg(
            url, t.gettext("QR code of %(name)s's personal link") % {"name": contact.display_name}
        )
        if contact.link_active
        else "",
        "residents": approved,
    }


def home_context(request: Request, session: Session, home: Home) -> dict[str, Any]:
    t, lang = tr(request), language(request)
    tablets = list(
        session.scalars(
            select(Tablet).where(Tablet.home_id == home.id).order_by(Tablet.created_at, Tablet.id)
        )
    )
    serving: dict[str, list[str]] = {}
    for tablet in tablets:
        if tablet.retired_at is None:
            for resident in tablet_service.served_residents(session, tablet):
                serving.setdefault(resident.id, []).append(tablet.name)
    residents = []
    for resident in session.scalars(
        select(Resident)
        .where(Resident.home_id == home.id, Resident.active)
        .order_by(Resident.first_name, Resident.last_name)
    ):
        approvals = sorted(
            resident.approvals,
            key=lambda a: (STATUS_ORDER.get(a.status, 3), a.contact.display_name.lower()),
        )
        residents.append(
            {
                "resident": resident,
                "tablets": serving.get(resident.id, []),
                "approvals": [
                    {"approval": a, "summary": policies.summary(a.policy, t, lang)}
                    for a in approvals
                ],
            }
        )
    contacts = [
        contact_view(request, c)
        for c in session.scalars(
            select(Contact).where(Contact.home_id == home.id).order_by(Contact.display_name)
        )
    ]
    return {
        "home": home,
        "residents": residents,
        "contacts": contacts,
        "tablets": [
            {
                "tablet": tablet,
                "last_seen": local_time(tablet.last_seen, home.timezone, lang),
                "retired": local_time(tablet.retired_at, home.timezone, lang),
            }
            for tablet in sorted(tablets, key=lambda x: x.retired_at is not None)
        ],
    }


def home_page_response(
    request: Request,
    session: Session,
    staff: Staff,
    home: Home,
    *,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        session,
        staff,
        "staff/home.html",
        status_code=status_code,
        error=error,
        notice=request.query_params.get("notice", ""),
        **home_context(request, session, home),
    )


@router.get("/staff/homes/{home_id}", response_class=HTMLResponse)
def home_page(
    home_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> HTMLResponse:
    return home_page_response(request, session, staff, home_for(session, staff, home_id))


def _refused(
    request: Request, session: Session, staff: Staff, home: Home, exc: ServiceError
) -> HTMLResponse:
    session.rollback()
    t = tr(request)
    return home_page_response(
        request, session, staff, home, error=t.gettext(str(exc)), status_code=exc.status_code
    )


# --- residents ----------------------------------------------------------------------------------


@router.post("/staff/homes/{home_id}/residents", dependencies=[CsrfChecked])
def add_resident(
    home_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "senior",
    resident_language: Annotated[str, Form(alias="language")] = "fr",
) -> Response:
    home = home_for(session, staff, home_id)
    try:
        resident = directory.add_resident(
            session=session,
            home_id=home.id,
            first_name=first_name,
            last_name=last_name,
            kind=kind,
            language=resident_language,
            by=actor(staff),
        )
        changed = decisions.residents_changed(session, [resident.id])
    except ServiceError as exc:
        return _refused(request, session, staff, home, exc)
    session.commit()
    apply(request, changed)
    return see_other(request, f"/staff/homes/{home.id}", notice="resident_added")


@router.post("/staff/residents/{resident_id}/pin", dependencies=[CsrfChecked])
def set_pin(
    resident_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    pin: Annotated[str, Form()] = "",
) -> Response:
    resident = session.get(Resident, resident_id)
    check_home_access(session, staff, resident.home_id if resident is not None else None)
    assert resident is not None
    try:
        changed = staff_actions.set_resident_pin(
            session=session, resident_id=resident.id, pin=pin, by=actor(staff)
        )
    except ServiceError as exc:
        return _refused(request, session, staff, resident.home, exc)
    session.commit()
    apply(request, changed)
    return see_other(request, f"/staff/homes/{resident.home_id}", notice="pin_set")


# --- contacts' personal links -----------------------------------------------------------------


def _contact(session: Session, staff: Staff, contact_id: str) -> Contact:
    contact = session.get(Contact, contact_id)
    check_home_access(session, staff, contact.home_id if contact is not None else None)
    assert contact is not None
    return contact


def _link_changed(request: Request, contact: Contact, notice: str) -> Response:
    if is_htmx(request):
        t = tr(request)
        messages = {
            "link_revoked": t.gettext("The link no longer works."),
            "link_regenerated": t.gettext("New link ready: the old one no longer works."),
        }
        return fragment(
            request,
            "staff/_contact.html",
            c=contact_view(request, contact),
            flash=messages.get(notice, ""),
        )
    return see_other(request, f"/staff/homes/{contact.home_id}", notice=notice)


@router.post("/staff/contacts/{contact_id}/link/revoke", dependencies=[CsrfChecked])
def revoke_link(
    contact_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> Response:
    contact = _contact(session, staff, contact_id)
    changed = staff_actions.revoke_link(session=session, contact_id=contact.id, by=actor(staff))
    session.commit()
    apply(request, changed)
    return _link_changed(request, contact, "link_revoked")


@router.post("/staff/contacts/{contact_id}/link/regenerate", dependencies=[CsrfChecked])
def regenerate_link(
    contact_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> Response:
    contact = _contact(session, staff, contact_id)
    changed = staff_actions.regenerate_link(session=session, contact_id=contact.id, by=actor(staff))
    session.commit()
    apply(request, changed)
    return _link_changed(request, contact, "link_regenerated")


# --- tablets ------------------------------------------------------------------------------------


def _tablet(session: Session, staff: Staff, tablet_id: str) -> Tablet:
    tablet = session.get(Tablet, tablet_id)
    check_home_access(session, staff, tablet.home_id if tablet is not None else None)
    assert tablet is not None
    return tablet


def _code_page(
    request: Request,
    session: Session,
    staff: Staff,
    backend: Any,
    tablet: Tablet,
    issued: tablet_service.IssuedCode,
) -> HTMLResponse:
    t, lang = tr(request), language(request)
    from datetime import datetime

    payload = json.dumps({"server": public_url(backend), "code": issued.code})
    response = page(
        request,
        session,
        staff,
        "staff/code.html",
        tablet=tablet,
        home=tablet.home,
        code=f"{issued.code[:4]} {issued.code[4:]}",
        server=public_url(backend),
        expires=local_time(datetime.fromisoformat(issued.expires_at), tablet.home.timezone, lang),
        qr=qr_svg(
            payload, t.gettext("QR code to enrol the tablet %(name)s") % {"name": tablet.name}
        ),
    )
    # A one-time code: never kept in a cache or shown again by the back button.
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/staff/homes/{home_id}/tablets", dependencies=[CsrfChecked])
def add_tablet(
    home_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    backend: BackendDep,
    name: Annotated[str, Form()] = "",
) -> Response:
    home = home_for(session, staff, home_id)
    try:
        issued = staff_actions.add_tablet_with_code(
            session=session,
            home_id=home.id,
            name=name,
            secret_key=backend.settings.secret_key,
            ttl=timedelta(hours=backend.settings.enrolment_code_ttl_hours),
            by=actor(staff),
        )
    except ServiceError as exc:
        return _refused(request, session, staff, home, exc)
    session.commit()
    apply(request, decisions.NOTHING)  # not enrolled yet: nothing on the broker
    tablet = _tablet(session, staff, issued.tablet_id)
    return _code_page(request, session, staff, backend, tablet, issued)


@router.post("/staff/tablets/{tablet_id}/code", dependencies=[CsrfChecked])
def new_code(
    tablet_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    backend: BackendDep,
) -> Response:
    tablet = _tablet(session, staff, tablet_id)
    try:
        issued = staff_actions.issue_code(
            session=session,
            tablet_id=tablet.id,
            secret_key=backend.settings.secret_key,
            ttl=timedelta(hours=backend.settings.enrolment_code_ttl_hours),
            by=actor(staff),
        )
    except ServiceError as exc:
        return _refused(request, session, staff, tablet.home, exc)
    session.commit()
    apply(request, decisions.NOTHING)  # the tablet keeps its account until it enrols again
    return _code_page(request, session, staff, backend, tablet, issued)


@router.post("/staff/tablets/{tablet_id}/rename", dependencies=[CsrfChecked])
def rename_tablet(
    tablet_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    name: Annotated[str, Form()] = "",
) -> Response:
    tablet = _tablet(session, staff, tablet_id)
    try:
        changed = staff_actions.rename_tablet(
            session=session, tablet_id=tablet.id, name=name, by=actor(staff)
        )
    except ServiceError as exc:
        return _refused(request, session, staff, tablet.home, exc)
    session.commit()
    apply(request, changed)
    return see_other(request, f"/staff/homes/{tablet.home_id}", notice="tablet_renamed")


@router.post("/staff/tablets/{tablet_id}/retire", dependencies=[CsrfChecked])
def retire_tablet(
    tablet_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> Response:
    tablet = _tablet(session, staff, tablet_id)
    changed = staff_actions.retire_tablet(session=session, tablet_id=tablet.id, by=actor(staff))
    session.commit()
    apply(request, changed)
    return see_other(request, f"/staff/homes/{tablet.home_id}", notice="tablet_retired")


__all__ = ["router", "Approval"]
