"""The queue of contact requests (a child's from the tablet, a relative's from the public page)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import SessionDep
from backend.auth.deps import CsrfChecked, CurrentStaff, accessible_home_ids, check_home_access
from backend.dashboard.approvals import editing, form_for_editing
from backend.dashboard.common import (
    FormLists,
    actor,
    apply,
    fragment,
    is_htmx,
    language,
    local_time,
    page,
    see_other,
    tr,
)
from backend.models import (
    Approval,
    ApprovalStatus,
    ContactRequest,
    Home,
    RequestStatus,
    Resident,
    Staff,
)
from backend.services import decisions, policies
from backend.services import requests as request_service
from backend.services.errors import ServiceError

router = APIRouter()


def _warnings(session: Session, request: ContactRequest, lang: str) -> list[dict[str, Any]]:
    """Earlier decisions against this person: a child may be protected from a parent.

    Matches by name or relation, on the child (tablet) or the likely residents (relative):
    staff read the reason before approving anything.
    """
    if request.resident_id:
        resident_ids = [request.resident_id]
    else:
        resident_ids = [r.id for r in request_service.suggested_residents(session, request)]
    if not resident_ids:
        return []
    name = request.requester_name.casefold().strip()
    relation = request_service.relation_label(request.relation, lang).casefold().strip()
    found = []
    for approval in session.scalars(
        select(Approval).where(
            Approval.resident_id.in_(resident_ids),
            Approval.status != ApprovalStatus.APPROVED.value,
        )
    ):
        contact = approval.contact
        same_name = bool(name) and contact.display_name.casefold().strip() == name
        same_relation = bool(relation) and contact.relation.casefold().strip() == relation
        if same_name or same_relation:
            found.append(
                {
                    "contact": contact.display_name,
                    "resident": approval.resident.first_name,
                    "status": approval.status,
                    "reason": approval.reason,
                    "approval_id": approval.id,
                }
            )
    return found


def request_view(
    request: Request,
    session: Session,
    contact_request: ContactRequest,
    *,
    policy_form: policies.PolicyForm | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    open_form: str = "",
) -> dict[str, Any]:
    lang = language(request)
    home = session.get(Home, contact_request.home_id)
    timezone = home.timezone if home is not None else "Europe/Paris"
    residents: list[Resident] = []
    if contact_request.resident_id is None:
        suggested = request_service.suggested_residents(session, contact_request)
        others = [
            r
            for r in session.scalars(
                select(Resident)
                .where(Resident.home_id == contact_request.home_id, Resident.active)
                .order_by(Resident.first_name)
            )
            if r not in suggested
        ]
        residents = suggested + others
    resident = (
        session.get(Resident, contact_request.resident_id) if contact_request.resident_id else None
    )
    return {
        "r": contact_request,
        "home": home,
        "resident": resident,
        "residents": residents,
        "relation": request_service.relation_label(contact_request.relation, lang),
        "created": local_time(contact_request.created_at, timezone, lang),
        "warnings": _warnings(session, contact_request, lang),
        "form": policy_form or policies.form_from_policy(policies.SAFE_DEFAULT),
        "entered": values
        or {
            "name": contact_request.requester_name,
            "resident_id": residents[0].id if residents else "",
            "note": "",
        },
        "errors": errors or {},
        "open_form": open_form,
    }


@router.get("/staff/requests", response_class=HTMLResponse)
def queue_page(request: Request, session: SessionDep, staff: CurrentStaff) -> HTMLResponse:
    home_ids = accessible_home_ids(session, staff)
    pending = request_service.pending_requests(session, home_ids)
    return page(
        request,
        session,
        staff,
        "staff/requests.html",
        requests=[request_view(request, session, r) for r in pending],
        notice=request.query_params.get("notice", ""),
    )


def _pending(session: Session, staff: Staff, request_id: str) -> ContactRequest:
    contact_request = session.get(ContactRequest, request_id)
    check_home_access(session, staff, contact_request.home_id if contact_request else None)
    assert contact_request is not None
    return contact_request


def _again(
    request: Request,
    session: Session,
    staff: Staff,
    contact_request: ContactRequest,
    status_code: int,
    **form_state: Any,
) -> HTMLResponse:
    """The request's card with its form as the person left it (htmx), or the whole queue."""
    view = request_view(request, session, contact_request, **form_state)
    if is_htmx(request):
        return fragment(request, "staff/_request.html", item=view, status_code=status_code)
    home_ids = accessible_home_ids(session, staff)
    views = [
        view if r.id == contact_request.id else request_view(request, session, r)
        for r in request_service.pending_requests(session, home_ids)
    ]
    return page(
        request, session, staff, "staff/requests.html", status_code=status_code, requests=views
    )


def _decided(request: Request, message: str, notice: str) -> Response:
    if is_htmx(request):
        return fragment(request, "staff/_notice.html", message=message)
    return see_other(request, "/staff/requests", notice=notice)


@router.post("/staff/requests/{request_id}/approve", dependencies=[CsrfChecked])
def approve(
    request_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    form: FormLists,
) -> Response:
    contact_request = _pending(session, staff, request_id)
    values = {k: (form.get(k) or [""])[0].strip() for k in ("name", "resident_id")}
    values["note"] = ""
    if editing(form):
        return _again(
            request,
            session,
            staff,
            contact_request,
            200,
            policy_form=form_for_editing(form),
            values=values,
            open_form="approve",
        )
    t = tr(request)
    policy_form = policies.read_form(form)
    policy, errors = policies.policy_from_form(policy_form, t)
    if contact_request.status != RequestStatus.PENDING.value:
        return _decided(request, t.gettext("This request has already been decided."), "decided")
    if policy is None or errors:
        return _again(
            request,
            session,
            staff,
            contact_request,
            400,
            policy_form=policy_form,
            values=values,
            errors=errors,
            open_form="approve",
        )
    try:
        approval = request_service.approve_request(
            session=session,
            request_id=contact_request.id,
            by=actor(staff),
            policy=policy,
            resident_id=values["resident_id"] or None,
            display_name=values["name"] or None,
        )
        changed = decisions.residents_changed(session, [approval.resident_id])
        message = t.gettext("%(contact)s can now be in touch with %(resident)s.") % {
            "contact": approval.contact.display_name,
            "resident": approval.resident.first_name,
        }
    except ServiceError as exc:
        session.rollback()
        return _again(
            request,
            session,
            staff,
            contact_request,
            exc.status_code,
            policy_form=policy_form,
            values=values,
            errors={"approve": t.gettext(str(exc))},
            open_form="approve",
        )
    session.commit()
    apply(request, changed)
    return _decided(request, message, "approved")


@router.post("/staff/requests/{request_id}/refuse", dependencies=[CsrfChecked])
def refuse(
    request_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    form: FormLists,
) -> Response:
    contact_request = _pending(session, staff, request_id)
    t = tr(request)
    note = (form.get("note") or [""])[0].strip()
    if not note:
        return _again(
            request,
            session,
            staff,
            contact_request,
            400,
            values={"name": contact_request.requester_name, "resident_id": "", "note": note},
            errors={
                "note": t.gettext("Write a short note for your colleagues: why is it refused?")
            },
            open_form="refuse",
        )
    try:
        request_service.refuse_request(
            session=session, request_id=contact_request.id, by=actor(staff), note=note
        )
    except ServiceError as exc:
        session.rollback()
        return _decided(request, t.gettext(str(exc)), "decided")
    session.commit()
    apply(request, decisions.NOTHING)  # no pair was made: no tablet changes
    message = t.gettext("Request from %(name)s refused.") % {"name": contact_request.requester_name}
    return _decided(request, message, "refused")
