"""The audit log page (administrators): who did what, when, to whom. Read-only by design:
there is no route that edits or deletes an entry."""

from __future__ import annotations

import gettext
import json
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.api.deps import SessionDep
from backend.auth.deps import AdminStaff
from backend.dashboard.common import language, link, local_time, page, tr
from backend.models import (
    Approval,
    AuditEntry,
    Contact,
    ContactRequest,
    Home,
    Resident,
    Staff,
    Tablet,
)
from backend.services import policies

router = APIRouter()

_STATUS_WORDS = {"approved": "Allowed", "suspended": "Suspended", "revoked": "Revoked"}

# What each action means, for a person (msgids); an unknown action is shown as its code.
ACTIONS = {
    "approval.approve": "Contact approved",
    "approval.update": "Policy changed",
    "approval.approved": "Contact allowed again",
    "approval.suspended": "Contact suspended",
    "approval.revoked": "Contact revoked",
    "approval.revoke": "Contact revoked",
    "call.end": "Call ended by staff",
    "contact.add": "Contact added",
    "contact.link_revoke": "Personal link revoked",
    "contact.link_regenerate": "New personal link",
    "home.add": "Home added",
    "photo.approve": "Photo approved",
    "photo.refuse": "Photo refused",
    "request.approve": "Request approved",
    "request.refuse": "Request refused",
    "request.create": "New request",
    "resident.add": "Resident added",
    "resident.pin_set": "Child's PIN set",
    "staff.add": "Staff member added",
    "staff.login": "Logged in",
    "staff.locked": "Account locked",
    "tablet.add": "Tablet added",
    "tablet.enrol": "Tablet enrolled",
    "tablet.enrolment_code": "Enrolment code made",
    "tablet.rename": "Tablet renamed",
    "tablet.retire": "Tablet retired",
    "call.supervised": "Supervised call opened",
    "call.supervision_refused": "Supervised call refused",
    "home.isolation_days": "Isolation alert delay changed",
    "home.retention_set": "Retention period changed",
    "resident.portrait": "Resident's photo changed",
    "contact.portrait": "Contact's photo changed",
    "resident.erase": "Resident erased",
    "resident.export": "Resident's data exported",
    "resident.pin_lock_reset": "Child's PIN unlocked",
    "retention.folded": "Old details folded into daily figures",
    "staff.assign": "Staff member assigned to a home",
    "staff.disable": "Staff account disabled",
    "staff.password": "Password changed",
    "staff.pin": "Staff PIN changed",
}


def action_label(action: str, t: gettext.NullTranslations) -> str:
    msgid = ACTIONS.get(action)
    return t.gettext(msgid) if msgid else action


PAGE_SIZE = 50
DEFAULT_TZ = "Europe/Paris"


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _target_name(session: Session, entry: AuditEntry) -> str:
    kind, key = entry.target_type, entry.target_id
    if kind == "resident" and (resident := session.get(Resident, key)):
        return f"{resident.first_name} {resident.last_name}".strip()
    if kind == "contact" and (contact := session.get(Contact, key)):
        return contact.display_name
    if kind == "tablet" and (tablet := session.get(Tablet, key)):
        return tablet.name
    if kind == "approval" and (approval := session.get(Approval, key)):
        return f"{approval.resident.first_name} ↔ {approval.contact.display_name}"
    if kind == "contact_request" and (contact_request := session.get(ContactRequest, key)):
        return contact_request.requester_name
    if kind == "home" and (home := session.get(Home, key)):
        return home.name
    if kind == "staff" and (staff := session.get(Staff, key)):
        return staff.name
    return ""


def _actor_name(session: Session, actor: str, cache: dict[str, str]) -> str:
    if actor not in cache:
        name = actor
        if actor.startswith("staff:"):
            staff = session.get(Staff, actor[6:])
            if staff is not None:
                name = f"{staff.name} ({staff.email})"
        cache[actor] = name
    return cache[actor]


def _details(details: dict[str, Any], t: gettext.NullTranslations, lang: str) -> str:
    """The entry's details as a person reads them: reasons, notes, policies in one line each.

    Ids are left out (the "to whom" column names the target); anything else is shown as is.
    """
    _ = t.gettext
    lines = []
    after = details.get("after") if isinstance(details.get("after"), dict) else None
    before = details.get("before") if isinstance(details.get("before"), dict) else None
    if after and before and before.get("status") != after.get("status"):
        lines.append(
            _("Status: %(before)s → %(after)s")
            % {
                "before": _(
                    _STATUS_WORDS.get(str(before.get("status")), str(before.get("status")))
                ),
                "after": _(_STATUS_WORDS.get(str(after.get("status")), str(after.get("status")))),
            }
        )
    source = after or details
    if isinstance(source.get("policy"), dict):
        lines.append(
            _("Policy: %(summary)s") % {"summary": policies.summary(source["policy"], t, lang)}
        )
    for key, label in (("reason", _("Reason: %(text)s")), ("note", _("Note: %(text)s"))):
        if source.get(key):
            lines.append(label % {"text": source[key]})
    for key, value in sorted(details.items()):
        if key in {"after", "before", "policy", "reason", "note"} or key.endswith("_id"):
            continue
        if value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {text}")
    return "\n".join(lines)[:800]


@router.get("/staff/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: SessionDep, staff: AdminStaff) -> HTMLResponse:
    params = request.query_params
    filters = {
        "home": params.get("home", ""),
        "actor": params.get("actor", "").strip()[:200],
        "action": params.get("action", ""),
        "from": params.get("from", ""),
        "to": params.get("to", ""),
    }
    try:
        page_number = max(1, int(params.get("page", "1")))
    except ValueError:
        page_number = 1
    tz = ZoneInfo(DEFAULT_TZ)
    query = select(AuditEntry)
    if filters["home"]:
        query = query.where(AuditEntry.home_id == filters["home"])
    if filters["actor"]:
        needle = filters["actor"].lower()
        # By name or email: the log stores staff ids ("staff:<id>"), names and emails change.
        ids = [
            f"staff:{s.id}"
            for s in session.scalars(
                select(Staff).where(
                    func.lower(Staff.name).contains(needle)
                    | func.lower(Staff.email).contains(needle)
                )
            )
        ]
        query = query.where(
            func.lower(AuditEntry.actor).contains(needle) | AuditEntry.actor.in_(ids or [""])
        )
    if filters["action"]:
        query = query.where(AuditEntry.action == filters["action"])
    if (start := _day(filters["from"])) is not None:
        query = query.where(AuditEntry.at >= datetime.combine(start, time(0), tzinfo=tz))
    if (end := _day(filters["to"])) is not None:
        query = query.where(
            AuditEntry.at < datetime.combine(end + timedelta(days=1), time(0), tzinfo=tz)
        )
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    page_number = min(page_number, pages)
    entries = session.scalars(
        query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset((page_number - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    homes = {h.id: h for h in session.scalars(select(Home).order_by(Home.name))}
    lang, t = language(request), tr(request)
    actors: dict[str, str] = {}
    rows = []
    for entry in entries:
        home = homes.get(entry.home_id or "")
        rows.append(
            {
                "entry": entry,
                "at": local_time(entry.at, home.timezone if home else DEFAULT_TZ, lang),
                "home": home.name if home else "",
                "actor": _actor_name(session, entry.actor, actors),
                "target": _target_name(session, entry),
                "details": _details(entry.details, t, lang),
                "action": action_label(entry.action, t),
            }
        )
    actions = [
        (code, action_label(code, t))
        for code in session.scalars(
            select(AuditEntry.action).distinct().order_by(AuditEntry.action)
        )
    ]

    def page_link(number: int) -> str:
        return link(request, "/staff/audit", **{**filters, "page": number if number > 1 else ""})

    return page(
        request,
        session,
        staff,
        "staff/audit.html",
        rows=rows,
        homes=list(homes.values()),
        actions=actions,
        filters=filters,
        total=total,
        page_number=page_number,
        pages=pages,
        prev_link=page_link(page_number - 1) if page_number > 1 else "",
        next_link=page_link(page_number + 1) if page_number < pages else "",
    )
