"""Usage as staff see it: a resident's weeks, a home's weeks, the CSV a manager reports.

Aggregates only, per week (``backend/services/usage.py``): which calls, with whom and at what
minute is never shown here.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from datetime import date, timedelta
from typing import Annotated
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import exists, or_, select

from backend.api.deps import SessionDep
from backend.auth.deps import NOT_FOUND, CsrfChecked, CurrentStaff, check_home_access, home_for
from backend.dashboard.charts import activity_name, usage_charts, week_label
from backend.dashboard.common import actor, apply, language, page, see_other, tr
from backend.models import (
    Approval,
    ApprovalStatus,
    Contact,
    Home,
    Resident,
    StaffRole,
    Tablet,
    tablet_residents,
)
from backend.services import audit, decisions, usage

router = APIRouter()

WEEK_CHOICES = (4, 12, 26, 52)
ISOLATION_DAYS_MAX = 90


def _resident(session: SessionDep, staff: CurrentStaff, resident_id: str) -> Resident:
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    check_home_access(session, staff, resident.home_id)
    return resident


@router.get("/staff/residents/{resident_id}", response_class=HTMLResponse)
def resident_page(
    resident_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> HTMLResponse:
    resident = _resident(session, staff, resident_id)
    home = resident.home
    t, lang = tr(request), language(request)
    weeks_count = usage.clamp_weeks(request.query_params.get("weeks"))
    today = usage.local_today(home)
    weeks = usage.weekly(
        session, home=home, weeks=weeks_count, resident_id=resident.id, today=today
    )
    last_call = usage.last_call_day(session, resident=resident)
    since = last_call or resident.created_at.astimezone(ZoneInfo(home.timezone)).date()
    silent_days = (today - since).days
    contacts = sorted(
        session.scalars(
            select(Contact.display_name)
            .join(Approval, Approval.contact_id == Contact.id)
            .where(
                Approval.resident_id == resident.id,
                Approval.status == ApprovalStatus.APPROVED.value,
            )
        ),
        key=str.lower,
    )
    total = usage.Figures()
    for week in weeks:
        total.add(week.figures)
    return page(
        request,
        session,
        staff,
        "staff/resident.html",
        resident=resident,
        home=home,
        contacts=contacts,
        tablets=_tablet_names(session, resident),
        charts=usage_charts(weeks, t, lang, prefix="resident"),
        total=total,
        weeks_count=weeks_count,
        week_choices=WEEK_CHOICES,
        period=(week_label(weeks[0].start, lang), _day(today, lang)),
        last_call=_day(last_call, lang) if last_call else "",
        silent_days=silent_days,
        isolated=silent_days >= home.isolation_days,
        activity_names={k: activity_name(k, t) for k in total.activities},
    )


@router.get("/staff/homes/{home_id}/usage", response_class=HTMLResponse)
def home_usage_page(
    home_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> HTMLResponse:
    return _home_usage(request, session, staff, home_for(session, staff, home_id))


def _home_usage(
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    home: Home,
    *,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    t, lang = tr(request), language(request)
    weeks_count = usage.clamp_weeks(request.query_params.get("weeks"))
    today = usage.local_today(home)
    starts, per_resident = usage.weekly_by_resident(
        session, home=home, weeks=weeks_count, today=today
    )
    totals = [usage.Figures() for _ in starts]
    for figures in per_resident.values():
        for total, week in zip(totals, figures, strict=True):
            total.add(week)
    weeks = [usage.Week(s, f) for s, f in zip(starts, totals, strict=True)]
    rows = []
    for resident in _active_residents(session, home.id):
        summed = usage.Figures()
        for week in per_resident.get(resident.id, []):
            summed.add(week)
        rows.append({"resident": resident, "figures": summed})
    alerts = usage.isolation_alerts(session, home_ids={home.id})
    return page(
        request,
        session,
        staff,
        "staff/home_usage.html",
        status_code=status_code,
        error=error,
        home=home,
        charts=usage_charts(weeks, t, lang, prefix="home"),
        rows=rows,
        alerts=alerts,
        no_contact=usage.residents_without_contact(session, home_ids={home.id}),
        weeks_count=weeks_count,
        week_choices=WEEK_CHOICES,
        period=(week_label(starts[0], lang), _day(today, lang)),
        dates={a.resident_id: _day(a.last_call, lang) for a in alerts if a.last_call},
        notice=request.query_params.get("notice", ""),
    )


@router.get("/staff/homes/{home_id}/usage.csv")
def home_usage_csv(
    home_id: str, request: Request, session: SessionDep, staff: CurrentStaff
) -> Response:
    """Per resident per week: calls made, received, missed, minutes, activities opened.

    UTF-8 with a BOM and ``;`` between fields, so that a French Excel opens it as it is.
    """
    home = home_for(session, staff, home_id)
    t = tr(request)
    _ = t.gettext
    weeks_count = usage.clamp_weeks(request.query_params.get("weeks"))
    today = usage.local_today(home)
    starts, per_resident = usage.weekly_by_resident(
        session, home=home, weeks=weeks_count, today=today
    )
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        [
            _("Care home"),
            _("Resident"),
            _("Week from"),
            _("Week to"),
            _("Calls made"),
            _("Calls received"),
            _("Calls missed"),
            _("Minutes of calls"),
            _("Activities opened"),
        ]
    )
    for resident in _active_residents(session, home.id):
        weeks = per_resident.get(resident.id) or [usage.Figures() for _s in starts]
        for start, figures in zip(starts, weeks, strict=True):
            end = min(start + timedelta(days=6), today)
            writer.writerow(
                [
                    home.name,
                    f"{resident.first_name} {resident.last_name}".strip(),
                    start.isoformat(),
                    end.isoformat(),
                    figures.calls_made,
                    figures.calls_received,
                    figures.calls_missed,
                    figures.minutes,
                    figures.activity_uses,
                ]
            )
    name = f"liens-{_slug(home.name)}-{starts[0].isoformat()}_{today.isoformat()}.csv"
    ascii_name = name.encode("ascii", "ignore").decode() or "liens.csv"
    return Response(
        out.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
            ),
            "Cache-Control": "no-store",
        },
    )


@router.post("/staff/homes/{home_id}/isolation", dependencies=[CsrfChecked])
def set_isolation_days(
    home_id: str,
    request: Request,
    session: SessionDep,
    staff: CurrentStaff,
    isolation_days: Annotated[str, Form()] = "",
) -> Response:
    """An administrator sets after how many days without a call a resident is flagged."""
    home = home_for(session, staff, home_id)
    t = tr(request)
    if staff.role != StaffRole.ADMIN.value:
        raise HTTPException(
            status_code=403,
            detail=t.gettext("Only an administrator can change this setting."),
        )
    try:
        days = int(isolation_days.strip())
    except ValueError:
        days = 0
    if not 1 <= days <= ISOLATION_DAYS_MAX:
        # The page again, with the sentence where the form is; nothing changed.
        error = t.gettext("Give a number of days between 1 and %(max)s.") % {
            "max": ISOLATION_DAYS_MAX
        }
        if request.query_params.get("back") == "home":
            from backend.dashboard.homes import home_page_response

            return home_page_response(request, session, staff, home, error=error, status_code=422)
        return _home_usage(request, session, staff, home, error=error, status_code=422)
    before = home.isolation_days
    home.isolation_days = days
    audit.record(
        session=session,
        actor=actor(staff),
        action="home.isolation_days",
        target_type="home",
        target_id=home.id,
        home_id=home.id,
        details={"before": before, "after": days},
    )
    session.commit()
    apply(request, decisions.NOTHING)  # the dashboard's flag only: no tablet shows it
    back = request.query_params.get("back")
    target = f"/staff/homes/{home.id}" if back == "home" else f"/staff/homes/{home.id}/usage"
    return see_other(request, target, notice="isolation_saved")


def _tablet_names(session: SessionDep, resident: Resident) -> list[str]:
    """The home's tablets that show this resident: those assigned to them, and those assigned
    to nobody (a tablet with no assignment serves the whole home)."""
    assigned = select(tablet_residents.c.tablet_id).where(
        tablet_residents.c.resident_id == resident.id
    )
    has_assignment = exists().where(tablet_residents.c.tablet_id == Tablet.id)
    return list(
        session.scalars(
            select(Tablet.name)
            .where(
                Tablet.home_id == resident.home_id,
                Tablet.retired_at.is_(None),
                or_(Tablet.id.in_(assigned), ~has_assignment),
            )
            .order_by(Tablet.name)
        )
    )


def _active_residents(session: SessionDep, home_id: str) -> list[Resident]:
    return list(
        session.scalars(
            select(Resident)
            .where(Resident.home_id == home_id, Resident.active)
            .order_by(Resident.first_name, Resident.last_name)
        )
    )


def _day(day: date | None, lang: str) -> str:
    if day is None:
        return ""
    return str(day.strftime("%d/%m/%Y") if lang == "fr" else day.isoformat())


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:40] or "home"
