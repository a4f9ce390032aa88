"""The tablet fleet: is each tablet alive, charged, up to date, with room left?

Online/offline comes from the tablet's last will (``tablets/{id}/status``); battery, storage and
version from its last heartbeat event (``kiosk/heartbeat.py``). Every warning is said in words,
never only by a colour.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from backend.api.deps import SessionDep
from backend.auth.deps import CurrentStaff, accessible_home_ids, home_for
from backend.dashboard.common import language, local_time, page, tr
from backend.models import Home, Tablet, utcnow

router = APIRouter()

OFFLINE_WARNING = timedelta(hours=1)
BATTERY_LOW = 20  # percent
STORAGE_LOW_MB = 500


@dataclass
class FleetRow:
    tablet: Tablet
    home: Home
    last_seen: str
    heartbeat: str
    warnings: list[str]


def tablet_warnings(
    tablet: Tablet, t: gettext.NullTranslations, now: datetime | None = None
) -> list[str]:
    """What needs someone's attention, in plain words (empty: nothing)."""
    now = now or utcnow()
    warnings = []
    if tablet.enrolled_at is None:
        warnings.append(t.gettext("Not enrolled yet: give it its enrolment code."))
    elif not tablet.online:
        seen = tablet.last_seen
        if seen is None:
            warnings.append(t.gettext("Never connected."))
        elif now - seen > OFFLINE_WARNING:
            hours = int((now - seen).total_seconds() // 3600)
            if hours < 48:
                warnings.append(
                    t.ngettext(
                        "Offline for %(num)d hour: check that it is on and has Wi-Fi.",
                        "Offline for %(num)d hours: check that it is on and has Wi-Fi.",
                        hours,
                    )
                    % {"num": hours}
                )
            else:
                days = hours // 24
                warnings.append(
                    t.ngettext(
                        "Offline for %(num)d day: check that it is on and has Wi-Fi.",
                        "Offline for %(num)d days: check that it is on and has Wi-Fi.",
                        days,
                    )
                    % {"num": days}
                )
    if (
        tablet.battery_percent is not None
        and tablet.battery_percent < BATTERY_LOW
        and not tablet.charging
    ):
        warnings.append(
            t.gettext("Battery low (%(percent)s %%): plug it in.")
            % {"percent": tablet.battery_percent}
        )
    if tablet.free_storage_mb is not None and tablet.free_storage_mb < STORAGE_LOW_MB:
        warnings.append(
            t.gettext("Storage almost full (%(mb)s MB left).") % {"mb": tablet.free_storage_mb}
        )
    return warnings


TABLET_COLUMNS = (
    Tablet.id,
    Tablet.name,
    Tablet.home_id,
    Tablet.enrolled_at,
    Tablet.online,
    Tablet.last_seen,
    Tablet.app_version,
    Tablet.battery_percent,
    Tablet.charging,
    Tablet.free_storage_mb,
    Tablet.heartbeat_at,
)
FULL_LIST_MAX = 60  # more tablets than this: what needs attention, then a line per home


@dataclass
class HomeLine:
    home: Home
    total: int = 0
    online: int = 0
    attention: int = 0


def needs_attention(now: datetime) -> ColumnElement[bool]:
    """:func:`tablet_warnings` as a SQL condition (counting a département's fleet in SQL)."""
    return or_(
        Tablet.enrolled_at.is_(None),
        and_(
            Tablet.online.is_(False),
            or_(Tablet.last_seen.is_(None), Tablet.last_seen < now - OFFLINE_WARNING),
        ),
        and_(Tablet.battery_percent < BATTERY_LOW, Tablet.charging.is_not(True)),
        Tablet.free_storage_mb < STORAGE_LOW_MB,
    )


def fleet_rows(
    session: Session,
    homes: dict[str, Home],
    t: gettext.NullTranslations,
    lang: str,
    *,
    attention_only: bool = False,
    limit: int | None = None,
) -> list[FleetRow]:
    """The tablets of these homes, those needing attention first (plain rows, not objects)."""
    now = utcnow()
    query = (
        select(*TABLET_COLUMNS)
        .where(Tablet.retired_at.is_(None), Tablet.home_id.in_(homes or {""}))
        .order_by(Tablet.name)
    )
    if attention_only:
        query = query.where(needs_attention(now)).limit(limit)
    rows = []
    for tablet in session.execute(query):
        home = homes[tablet.home_id]
        rows.append(
            FleetRow(
                tablet=tablet,  # type: ignore[arg-type]  # a row with the same attributes
                home=home,
                last_seen=local_time(tablet.last_seen, home.timezone, lang),
                heartbeat=local_time(tablet.heartbeat_at, home.timezone, lang),
                warnings=tablet_warnings(tablet, t, now),  # type: ignore[arg-type]
            )
        )
    # What needs attention first; the rest by home and name.
    rows.sort(key=lambda r: (not r.warnings, r.home.name, r.tablet.name))
    return rows


@router.get("/staff/tablets", response_class=HTMLResponse)
def fleet_page(request: Request, session: SessionDep, staff: CurrentStaff) -> HTMLResponse:
    t, lang = tr(request), language(request)
    home_ids = accessible_home_ids(session, staff)
    only = request.query_params.get("home", "")
    if only:
        home_for(session, staff, only)  # 404 unless one of the staff's homes
        home_ids = {only}
    in_scope = select(Home)
    if home_ids is not None:
        in_scope = in_scope.where(Home.id.in_(home_ids or {""}))
    homes = {h.id: h for h in session.scalars(in_scope)}
    lines = {}
    for home_id, total, online, attention in session.execute(
        select(
            Tablet.home_id,
            func.count(),
            func.sum(case((Tablet.online.is_(True), 1), else_=0)),
            func.sum(case((needs_attention(utcnow()), 1), else_=0)),
        )
        .where(Tablet.retired_at.is_(None), Tablet.home_id.in_(homes or {""}))
        .group_by(Tablet.home_id)
    ):
        lines[home_id] = HomeLine(homes[home_id], int(total), int(online or 0), int(attention or 0))
    summary: dict[str, Any] = {
        "total": sum(line.total for line in lines.values()),
        "online": sum(line.online for line in lines.values()),
        "attention": sum(line.attention for line in lines.values()),
    }
    # A département's fleet is hundreds of tablets: list those that need someone, and a line
    # per home leading to its full list.
    shortened = summary["total"] > FULL_LIST_MAX
    shown = FULL_LIST_MAX * 2
    rows = fleet_rows(session, homes, t, lang, attention_only=shortened, limit=shown)
    return page(
        request,
        session,
        staff,
        "staff/fleet.html",
        rows=rows,
        hidden=max(0, summary["attention"] - shown) if shortened else 0,
        shortened=shortened,
        home_lines=sorted(lines.values(), key=lambda line: (-line.attention, line.home.name)),
        only=homes.get(only) if only else None,
        summary=summary,
        several_homes=len(lines) > 1,
    )
