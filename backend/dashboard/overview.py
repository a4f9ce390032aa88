"""The first page: the staff's homes, what waits for them, and the calls under way."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from backend.api.deps import SessionDep
from backend.auth.deps import (
    NOT_FOUND,
    CsrfChecked,
    CurrentStaff,
    accessible_home_ids,
    check_home_access,
)
from backend.dashboard.common import (
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
from backend.dashboard.photos import pending_photo_count
from backend.models import (
    ContactRequest,
    Home,
    RequestStatus,
    Resident,
    Staff,
    Tablet,
    staff_homes,
)
from backend.services import staff_actions, usage

router = APIRouter()


def _homes(session: Session, staff: Staff) -> list[Home]:
    query = select(Home).order_by(Home.name)
    if accessible_home_ids(session, staff) is not None:
        # The staff's homes through staff_homes (what Staff.homes holds): one bound value
        # instead of their ids (a département's coordinator has 100).
        query = query.join(staff_homes, staff_homes.c.home_id == Home.id).where(
            staff_homes.c.staff_id == staff.id
        )
    return list(session.scalars(query))


def calls_under_way(request: Request, session: Session, staff: Staff) -> list[dict[str, Any]]:
    """The hub's calls that belong to the staff's homes, with the home's name."""
    home_ids = accessible_home_ids(session, staff)
    calls = []
    for call in request.app.state.hub.active_calls():
        resident = session.get(Resident, call["resident_id"])
        if resident is None or (home_ids is not None and resident.home_id not in home_ids):
            continue
        calls.append({**call, "home_name": resident.home.name})
    return calls


ALERTS_SHOWN = 50  # the first page lists the longest silences; each home's usage page has all


@router.get("/staff/", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep, staff: CurrentStaff) -> HTMLResponse:
    lang = language(request)
    homes_list = _homes(session, staff)
    home_ids = {h.id for h in homes_list}
    # A few grouped queries whatever the number of homes (a département's staff sees 100).
    residents_by_home: dict[str, int] = dict(
        session.execute(
            select(Resident.home_id, func.count())
            .where(Resident.home_id.in_(home_ids or {""}), Resident.active)
            .group_by(Resident.home_id)
        ).all()
    )
    pending_by_home: dict[str, int] = dict(
        session.execute(
            select(ContactRequest.home_id, func.count())
            .where(
                ContactRequest.home_id.in_(home_ids or {""}),
                ContactRequest.status == RequestStatus.PENDING.value,
            )
            .group_by(ContactRequest.home_id)
        ).all()
    )
    enrolled = and_(
        Tablet.home_id.in_(home_ids or {""}),
        Tablet.retired_at.is_(None),
        Tablet.enrolled_at.is_not(None),
    )
    tablet_counts: dict[str, tuple[int, int]] = {
        home_id: (int(total), int(online or 0))
        for home_id, total, online in session.execute(
            select(
                Tablet.home_id,
                func.count(),
                func.sum(case((Tablet.online.is_(True), 1), else_=0)),
            )
            .where(enrolled)
            .group_by(Tablet.home_id)
        )
    }
    offline_by_home: dict[str, list[Tablet]] = {}
    for tablet in session.scalars(
        select(Tablet).where(enrolled, Tablet.online.is_(False)).order_by(Tablet.name)
    ):
        offline_by_home.setdefault(tablet.home_id, []).append(tablet)
    homes = []
    offline = []
    for home in homes_list:
        offline += [
            {"tablet": t, "home": home, "last_seen": local_time(t.last_seen, home.timezone, lang)}
            for t in offline_by_home.get(home.id, [])
        ]
        total, online = tablet_counts.get(home.id, (0, 0))
        homes.append(
            {
                "home": home,
                "residents": residents_by_home.get(home.id, 0),
                "online": online,
                "tablets": total,
                "pending": pending_by_home.get(home.id, 0),
            }
        )
    scope = accessible_home_ids(session, staff)
    alerts = usage.isolation_alerts(session, home_ids=scope)
    shown = alerts[:ALERTS_SHOWN]
    return page(
        request,
        session,
        staff,
        "staff/overview.html",
        homes=homes,
        offline=offline,
        calls=calls_under_way(request, session, staff),
        photos_pending=pending_photo_count(session, staff),
        alerts=alerts,
        no_contact=usage.residents_without_contact(session, home_ids=scope),
        alerts_shown=ALERTS_SHOWN,
        dates={a.resident_id: _day(a.last_call, lang) for a in shown if a.last_call is not None},
    )


def _day(day: date, lang: str) -> str:
    return str(day.strftime("%d/%m/%Y") if lang == "fr" else day.isoformat())


@router.get("/staff/calls", response_class=HTMLResponse)
def calls_panel(request: Request, session: SessionDep, staff: CurrentStaff) -> HTMLResponse:
    """The calls panel alone: the overview refreshes it every few seconds."""
    return fragment(request, "staff/_calls.html", calls=calls_under_way(request, session, staff))


@router.post("/staff/calls/{call_id}/end", dependencies=[CsrfChecked])
def end_call(call_id: str, request: Request, session: SessionDep, staff: CurrentStaff) -> Response:
    """End a call on both sides at once (the tablet and the relative's page)."""
    call = next((c for c in request.app.state.hub.active_calls() if c["call_id"] == call_id), None)
    resident = session.get(Resident, call["resident_id"]) if call is not None else None
    # A call that is over, unknown or of another home: the same 404, nothing to learn from it.
    if call is None or resident is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    check_home_access(session, staff, resident.home_id)
    changed = staff_actions.end_call(
        session=session, call_id=call_id, approval_id=call["approval_id"], by=actor(staff)
    )
    session.commit()
    apply(request, changed)
    if is_htmx(request):
        t = tr(request)
        return fragment(request, "staff/_notice.html", message=t.gettext("The call has ended."))
    return see_other(request, "/staff/")
