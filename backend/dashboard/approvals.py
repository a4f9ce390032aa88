"""One pair's policy and status, and new approvals made from a resident's card."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import SessionDep
from backend.auth.deps import CsrfChecked, CurrentStaff, check_home_access
from backend.dashboard.common import (
    FormLists,
    actor,
    actor_name,
    apply,
    language,
    local_time,
    page,
    see_other,
    tr,
)
from backend.models import Approval, ApprovalStatus, Contact, Resident, Staff
from backend.services import policies, staff_actions
from backend.services.errors import ServiceError

router = APIRouter()


def _approval(session: Session, staff: Staff, approval_id: str) -> Approval:
    approval = session.get(Approval, approval_id)
    check_home_access(session, staff, approval.resident.home_id if approval else None)
    assert approval is not None
    return approval


def _resident(session: Session, staff: Staff, resident_id: str) -> Resident:
    resident = session.get(Resident, resident_id)
    check_home_access(session, staff, resident.home_id if resident else None)
    assert resident is not None
    return resident


def editing(form: FormLists) -> bool:
    """A button that changes the form (add or remove a time slot) rather than saving it."""
    return (form.get("op") or [""])[0] == "add_window" or bool(form.get("remove_window"))


def form_for_editing(form: FormLists) -> policies.PolicyForm:
    policy_form = policies.read_form(form)
    if (form.get("op") or [""])[0] == "add_window" and len(
        policy_form.windows
    ) < policies.MAX_WINDOWS:
        policy_form.windows.append(policies.WindowRow())
    return policy_form


def approval_page(
    request: Request,
    session: Session,
    staff: Staff,
    approval: Approval,
    *,
    policy_form: policies.PolicyForm,
    status: str,
    reason: str,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        session,
        staff,
        "staff/approval.html",
        status_code=status_code,
        approval=approval,
        resident=approval.resident,
        contact=approval.contact,
        home=approval.resident.home,
        form=policy_form,
        status=status,
        reason=reason,
        errors=errors or {},
        decided_by=actor_name(session, approval.decided_by) if approval.decided_by else "",
        decided_at=local_time(
            approval.decided_at, approval.resident.home.timezone, language(request)
        ),
    )


@router.get("/staff/approvals/{approval_id}", response_class=HTMLResponse)
def approval_form(
    approval_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> HTMLResponse:
    approval = _approval(session, staff, approval_id)
    return approval_page(
        request,
        session,
        staff,
        approval,
        policy_form=policies.form_from_policy(approval.policy),
        status=approval.status,
        reason=approval.reason,
    )


@router.post("/staff/approvals/{approval_id}", dependencies=[CsrfChecked])
def save_approval(
    approval_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    form: FormLists,
) -> Response:
    approval = _approval(session, staff, approval_id)
    status = (form.get("status") or [""])[0]
    reason = (form.get("reason") or [""])[0].strip()
    if editing(form):
        return approval_page(
            request,
            session,
            staff,
            approval,
            policy_form=form_for_editing(form),
            status=status,
            reason=reason,
        )
    t = tr(request)
    policy_form = policies.read_form(form)
    policy, errors = policies.policy_from_form(policy_form, t)
    if status not in {s.value for s in ApprovalStatus}:
        errors["status"] = t.gettext("Choose whether calls are allowed, suspended or revoked.")
    elif status != ApprovalStatus.APPROVED.value and not reason:
        errors["reason"] = t.gettext(
            "Say why: the reason stays in the log and helps the next person on duty."
        )
    if policy is None or errors:
        return approval_page(
            request,
            session,
            staff,
            approval,
            policy_form=policy_form,
            status=status,
            reason=reason,
            errors=errors,
            status_code=400,
        )
    try:
        changed = staff_actions.set_approval(
            session=session,
            approval_id=approval.id,
            policy=policy,
            status=status,
            reason=reason,
            by=actor(staff),
        )
    except ServiceError as exc:
        session.rollback()
        return approval_page(
            request,
            session,
            staff,
            approval,
            policy_form=policy_form,
            status=status,
            reason=reason,
            errors={"policy": t.gettext(str(exc))},
            status_code=exc.status_code,
        )
    home_id = approval.resident.home_id
    session.commit()
    apply(request, changed)
    return see_other(request, f"/staff/homes/{home_id}", notice="approval_saved")


# --- a new approval from a resident's card ----------------------------------------------------


def _candidates(session: Session, resident: Resident) -> list[Contact]:
    """The home's contacts not yet paired with this resident (an existing pair is edited)."""
    paired = set(
        session.scalars(select(Approval.contact_id).where(Approval.resident_id == resident.id))
    )
    return [
        c
        for c in session.scalars(
            select(Contact)
            .where(Contact.home_id == resident.home_id)
            .order_by(Contact.display_name)
        )
        if c.id not in paired
    ]


def new_page(
    request: Request,
    session: Session,
    staff: Staff,
    resident: Resident,
    *,
    policy_form: policies.PolicyForm,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        session,
        staff,
        "staff/new_approval.html",
        status_code=status_code,
        resident=resident,
        home=resident.home,
        candidates=_candidates(session, resident),
        form=policy_form,
        values=values,
        errors=errors or {},
    )


@router.get("/staff/residents/{resident_id}/approvals/new", response_class=HTMLResponse)
def new_approval_form(
    resident_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> HTMLResponse:
    resident = _resident(session, staff, resident_id)
    return new_page(
        request,
        session,
        staff,
        resident,
        policy_form=policies.form_from_policy(policies.SAFE_DEFAULT),
        values={"contact_id": request.query_params.get("contact", ""), "name": "", "relation": ""},
    )


@router.post("/staff/residents/{resident_id}/approvals/new", dependencies=[CsrfChecked])
def create_approval(
    resident_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    form: FormLists,
) -> Response:
    resident = _resident(session, staff, resident_id)
    values = {key: (form.get(key) or [""])[0].strip() for key in ("contact_id", "name", "relation")}
    if editing(form):
        return new_page(
            request, session, staff, resident, policy_form=form_for_editing(form), values=values
        )
    t = tr(request)
    policy_form = policies.read_form(form)
    policy, errors = policies.policy_from_form(policy_form, t)
    contact_id = values["contact_id"]
    if contact_id and contact_id not in {c.id for c in _candidates(session, resident)}:
        errors["contact"] = t.gettext("Choose one of the contacts in the list.")
    elif not contact_id and not values["name"]:
        errors["contact"] = t.gettext("Choose a contact, or give the new contact's name.")
    if policy is None or errors:
        return new_page(
            request,
            session,
            staff,
            resident,
            policy_form=policy_form,
            values=values,
            errors=errors,
            status_code=400,
        )
    try:
        _approval_row, changed = staff_actions.create_approval(
            session=session,
            resident_id=resident.id,
            contact_id=contact_id or None,
            new_contact_name=values["name"],
            new_contact_relation=values["relation"],
            policy=policy,
            by=actor(staff),
        )
    except ServiceError as exc:
        session.rollback()
        return new_page(
            request,
            session,
            staff,
            resident,
            policy_form=policy_form,
            values=values,
            errors={"contact": t.gettext(str(exc))},
            status_code=exc.status_code,
        )
    session.commit()
    apply(request, changed)
    return see_other(request, f"/staff/homes/{resident.home_id}", notice="approval_saved")
