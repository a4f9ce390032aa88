"""What staff see of usage, against a real backend (SQLite, and once PostgreSQL) and a logged-in
session: weekly charts from ``usage_daily`` plus today's detail, isolation alerts for N days,
residents with no contact, the CSV a manager reports, and each staff member's own homes only."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from backend.models import Call, Home, Resident, Tablet, TabletEvent, new_id
from backend.services import directory, rollup
from backend.services import tablets as tablet_service
from backend.services.usage import monday
from tests.helpers import RunningBackend, running_backend
from tests.integration.test_dashboard import add_staff, logged_in
from tests.integration.test_postgres import postgres_url  # noqa: F401

PARIS = ZoneInfo("Europe/Paris")


def paris_today() -> date:
    """Today in the home's time zone, not within two minutes of midnight (so that what a test
    seeds as 'today' is still today when it reads the page)."""
    now = datetime.now(PARIS)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), PARIS)
    if (midnight - now).total_seconds() < 120:
        time.sleep((midnight - now).total_seconds() + 1)
    return datetime.now(PARIS).date()


def noon_utc(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), PARIS).replace(hour=12).astimezone(UTC)


def add_daily(b: RunningBackend, home: str, resident: str, day: date, **figures: Any) -> None:
    """A rolled-up day, written as the roll-up writes it (which keeps the resident's last call
    day, backend/services/rollup.py)."""
    with b.db.session() as s:
        rollup.upsert(s, home, {(resident, day): rollup.Figures(**figures)})


def add_call(
    b: RunningBackend,
    resident: str,
    contact: str,
    *,
    direction: str,
    at: datetime,
    answered: bool,
    seconds: int = 0,
) -> None:
    with b.db.session() as s:
        approval = directory.find_approval(s, resident, contact)
        s.add(
            Call(
                id=new_id(),
                direction=direction,
                resident_id=resident,
                contact_id=contact,
                approval_id=approval.id if approval else "none",
                created_at=at,
                ring_at=at,
                answer_at=at + timedelta(seconds=5) if answered else None,
                end_at=at + timedelta(seconds=5 + seconds),
                duration_s=seconds if answered else None,
                outcome="completed" if answered else "missed",
            )
        )


def add_activity(
    b: RunningBackend, tablet: str, resident: str, activity: str, at: datetime
) -> None:
    ts = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with b.db.session() as s:
        for kind, extra in (("activity_started", {}), ("activity_stopped", {"duration_s": 90})):
            s.add(
                TabletEvent(
                    id=new_id(),
                    tablet_id=tablet,
                    type=kind,
                    ts=ts,
                    data={"event": kind, "activity": activity, "resident_id": resident, **extra},
                )
            )


def chart_rows(html: str, chart_id: str) -> dict[str, list[int]]:
    """The numbers table of one chart: week label -> values."""
    figure = re.search(rf'<figure class="chart" id="{chart_id}".*?</figure>', html, re.S)
    assert figure, f"no chart {chart_id}"
    rows = {}
    for label, cells in re.findall(
        r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', figure.group(0), re.S
    ):
        rows[label] = [int(v) for v in re.findall(r"<td>(\d+)</td>", cells)]
    return rows


def week_label(day: date) -> str:
    return monday(day).strftime("%d/%m")


@pytest.fixture
def seeded(backend: RunningBackend) -> dict[str, Any]:
    ids = backend.seed(residents=3, contacts=2)
    backend.approve(ids["residents"][0], ids["contacts"][0])
    backend.approve(ids["residents"][1], ids["contacts"][1])
    add_staff(backend, "ana@example.org", homes=[ids["home"]])
    return ids


def test_resident_charts_add_rolled_up_days_and_todays_detail(
    backend: RunningBackend, seeded: dict[str, Any]
) -> None:
    ids = seeded
    home, marcel, julie = ids["home"], ids["residents"][0], ids["contacts"][0]
    today = paris_today()
    three_weeks_ago = today - timedelta(weeks=3)
    # Rolled up: two past days in the same week, and one in the week three weeks back.
    add_daily(
        backend,
        home,
        marcel,
        monday(today - timedelta(weeks=1)),
        calls_made=2,
        calls_received=1,
        calls_missed=1,
        call_seconds=600,
        activities={"photos": 2},
        activity_seconds=100,
    )
    add_daily(
        backend,
        home,
        marcel,
        monday(today - timedelta(weeks=1)) + timedelta(days=2),
        calls_made=1,
        call_seconds=300,
        activities={"memory": 1},
    )
    add_daily(
        backend, home, marcel, three_weeks_ago, calls_received=3, call_seconds=1800, activities={}
    )
    # Too old for 12 weeks, and another resident's day: neither is counted.
    add_daily(backend, home, marcel, today - timedelta(weeks=20), calls_made=9, activities={})
    add_daily(
        backend, home, ids["residents"][1], today - timedelta(days=7), calls_made=5, activities={}
    )
    # Today, not rolled up yet: the detail.
    now = datetime.now(UTC)
    add_call(backend, marcel, julie, direction="from_resident", at=now, answered=True, seconds=240)
    add_call(backend, marcel, julie, direction="to_resident", at=now, answered=False)
    add_activity(backend, ids["tablet"], marcel, "photos", now)

    http, _csrf = logged_in(backend, "ana@example.org")
    page = http.get(f"{backend.base_url}/staff/residents/{marcel}", timeout=10)
    assert page.status_code == 200, page.text[:1000]
    html = page.text
    calls = chart_rows(html, "resident-calls")
    assert len(calls) == 12
    # Weeks without a figure are zeros, not missing.
    assert sum(sum(v) for v in calls.values()) == 2 + 1 + 1 + 1 + 3 + 1 + 1
    last_week = week_label(today - timedelta(weeks=1))
    assert calls[last_week] == [3, 1, 1]
    assert calls[week_label(three_weeks_ago)] == [0, 3, 0]
    assert calls[week_label(today)] == [1, 0, 1]  # today's detail: one made, one missed
    minutes = chart_rows(html, "resident-minutes")
    assert minutes[last_week] == [15] and minutes[week_label(today)] == [4]
    activities = chart_rows(html, "resident-activities")
    # Columns: Memory game, Photos (sorted by key), then the total.
    assert activities[last_week] == [1, 2, 3]
    assert activities[week_label(today)] == [0, 1, 1]
    # Real charts from pygal, inline, named for screen readers, with no script from anywhere;
    # the bars carry the same figures as the table: pygal draws one rect per series and week,
    # series after series, each as tall as its value on the same scale.
    assert html.count('class="pygal-chart"') == 3
    calls_svg = re.search(r'<figure class="chart" id="resident-calls".*?</svg>', html, re.S)
    assert calls_svg and "<title>Appels par semaine</title>" in calls_svg.group(0)
    heights = [
        float(h)
        for h in re.findall(r'<rect [^>]*height="([0-9.]+)"[^>]*class="rect ', calls_svg.group(0))
    ]
    values = [week[series] for series in range(3) for week in calls.values()]
    assert len(heights) == len(values) == 36
    unit = max(heights) / max(values)
    assert heights == pytest.approx([v * unit for v in values])
    assert "<desc" not in calls_svg.group(0)  # the tooltips' data: no script reads it
    assert 'role="img" aria-label="Appels par semaine"' in html
    assert "<script" not in html.split("<main", 1)[1]
    assert "Aucun appel depuis" not in html  # Marcel called today
    # Aggregates only: no time of day of a call appears on the page.
    assert now.astimezone(PARIS).strftime("%H:%M") not in html

    # The home's page: the same weeks for everyone (Odette's 5 calls included), and the table.
    usage = http.get(f"{backend.base_url}/staff/homes/{home}/usage", timeout=10)
    assert usage.status_code == 200
    home_calls = chart_rows(usage.text, "home-calls")
    assert home_calls[week_label(today - timedelta(days=7))][0] >= 5
    assert home_calls[week_label(today)] == [1, 0, 1]
    assert f'href="/staff/residents/{marcel}"' in usage.text

    # The home page links each resident to their page.
    home_page = http.get(f"{backend.base_url}/staff/homes/{home}", timeout=10)
    assert f'href="/staff/residents/{marcel}"' in home_page.text

    # 26 weeks shows the older day too; nonsense is clamped, not an error.
    longer = chart_rows(
        http.get(f"{backend.base_url}/staff/residents/{marcel}?weeks=26", timeout=10).text,
        "resident-calls",
    )
    assert len(longer) == 26 and longer[week_label(today - timedelta(weeks=20))] == [9, 0, 0]
    odd = http.get(f"{backend.base_url}/staff/residents/{marcel}?weeks=abc", timeout=10)
    assert odd.status_code == 200 and len(chart_rows(odd.text, "resident-calls")) == 12


def test_csv_export_per_resident_and_week_opens_in_french_excel(
    backend: RunningBackend, seeded: dict[str, Any]
) -> None:
    ids = seeded
    home, marcel = ids["home"], ids["residents"][0]
    today = paris_today()
    add_daily(
        backend,
        home,
        marcel,
        today - timedelta(days=7),
        calls_made=2,
        calls_received=1,
        calls_missed=4,
        call_seconds=150,
        activities={"photos": 3, "clock": 1},
    )
    http, _csrf = logged_in(backend, "ana@example.org")
    answer = http.get(f"{backend.base_url}/staff/homes/{home}/usage.csv?weeks=4", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    disposition = answer.headers["content-disposition"]
    start = monday(today) - timedelta(weeks=3)
    assert f'filename="liens-les-tilleuls-{start.isoformat()}_{today.isoformat()}.csv"' in (
        disposition
    )
    raw = answer.content
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == [
        "Établissement",
        "Résident",
        "Semaine du",
        "Semaine au",
        "Appels passés",
        "Appels reçus",
        "Appels manqués",
        "Minutes d'appel",
        "Activités ouvertes",
    ]
    body = rows[1:]
    assert len(body) == 3 * 4  # every resident, every week, zeros included
    week = monday(today - timedelta(days=7)).isoformat()
    marcel_row = next(r for r in body if r[1] == "Marcel" and r[2] == week)
    assert marcel_row[0] == "Les Tilleuls"
    assert marcel_row[4:] == ["2", "1", "4", "2", "4"]  # 150 s -> 2 min; 3 + 1 activities
    # The current week ends today, not next Sunday.
    assert {r[3] for r in body if r[2] == monday(today).isoformat()} == {today.isoformat()}
    english = http.get(f"{backend.base_url}/staff/homes/{home}/usage.csv?lang=en", timeout=10)
    assert english.content.decode("utf-8-sig").startswith("Care home;Resident;Week from;")


def test_isolation_alerts_follow_the_homes_n_days_oldest_first(
    backend: RunningBackend, seeded: dict[str, Any]
) -> None:
    ids = seeded
    home = ids["home"]
    marcel, odette, lucien = ids["residents"]
    today = paris_today()
    with backend.db.session() as s:
        # Lucien arrived 20 days ago and nobody has called him; Rose arrived today.
        s.get(Resident, lucien).created_at = datetime.now(UTC) - timedelta(days=20)
        directory.add_resident(session=s, home_id=home, first_name="Rose", by="test")
        for rid in (marcel, odette):
            s.get(Resident, rid).created_at = datetime.now(UTC) - timedelta(days=60)
    add_daily(backend, home, marcel, today - timedelta(days=9), calls_received=1, activities={})
    # A day with only a missed call is no contact at all.
    add_daily(backend, home, marcel, today - timedelta(days=2), calls_missed=3, activities={})
    add_daily(backend, home, odette, today - timedelta(days=3), calls_made=1, activities={})
    add_staff(backend, "claire@example.org", role="admin", homes=[home])

    http, _csrf = logged_in(backend, "ana@example.org")
    first = http.get(f"{backend.base_url}/staff/", timeout=10)
    assert first.status_code == 200
    section = re.search(r'<section id="isolation".*?</section>', first.text, re.S)
    assert section, first.text[:3000]
    names = re.findall(r"<strong>([^<]+)</strong>", section.group(0))
    assert names == ["Lucien", "Marcel"]  # 20 days, then 9; Odette (3 days) and Rose not
    text = re.sub(r"\s+", " ", section.group(0))
    assert "Aucun appel depuis son arrivée il y a 20 jours" in text
    nine = (today - timedelta(days=9)).strftime("%d/%m/%Y")
    assert "Aucun appel depuis 9 jours" in text and f"dernier appel le {nine}" in text
    assert f'href="/staff/residents/{marcel}"' in text
    # Rose has no approved contact, nor has Lucien: they are listed for that too.
    no_contact = re.search(r'<section id="no-contact".*?</section>', first.text, re.S)
    assert no_contact and re.findall(r"<strong>([^<]+)</strong>", no_contact.group(0)) == [
        "Lucien",
        "Rose",
    ]

    # Only an administrator changes N; bad input is a sentence and changes nothing.
    refused = http.post(
        f"{backend.base_url}/staff/homes/{home}/isolation",
        data={"isolation_days": "2", "csrf_token": _csrf},
        timeout=10,
    )
    assert refused.status_code == 403
    admin, admin_csrf = logged_in(backend, "claire@example.org")
    bad = admin.post(
        f"{backend.base_url}/staff/homes/{home}/isolation",
        data={"isolation_days": "deux", "csrf_token": admin_csrf},
        timeout=10,
    )
    assert bad.status_code == 422 and "entre 1 et 90" in bad.text
    assert '<p class="error" role="alert">' in bad.text  # the page again, not an error screen
    bad = admin.post(
        f"{backend.base_url}/staff/homes/{home}/isolation?back=home",
        data={"isolation_days": "0", "csrf_token": admin_csrf},
        timeout=10,
    )
    assert bad.status_code == 422 and "entre 1 et 90" in bad.text and "Résidents" in bad.text
    with backend.db.session() as s:
        assert s.get(Home, home).isolation_days == 7  # nothing changed
    done = admin.post(
        f"{backend.base_url}/staff/homes/{home}/isolation?back=home",
        data={"isolation_days": "3", "csrf_token": admin_csrf},
        timeout=10,
    )
    assert done.status_code == 200 and done.url.endswith(
        f"/staff/homes/{home}?notice=isolation_saved"
    )
    first = http.get(f"{backend.base_url}/staff/?lang=en", timeout=10)
    section = re.search(r'<section id="isolation".*?</section>', first.text, re.S)
    assert section
    names = re.findall(r"<strong>([^<]+)</strong>", section.group(0))
    assert names == ["Lucien", "Marcel", "Odette"]
    assert "No call for 3 days" in re.sub(r"\s+", " ", section.group(0))

    # A call answered today (detail, not rolled up yet) takes Marcel off the list at once.
    add_call(
        backend,
        marcel,
        ids["contacts"][0],
        direction="to_resident",
        at=datetime.now(UTC),
        answered=True,
        seconds=60,
    )
    first = http.get(f"{backend.base_url}/staff/", timeout=10)
    section = re.search(r'<section id="isolation".*?</section>', first.text, re.S)
    assert section and "Marcel" not in section.group(0)


def test_staff_only_see_their_homes_residents_figures_and_tablets(
    backend: RunningBackend, seeded: dict[str, Any]
) -> None:
    ids = seeded
    with backend.db.session() as s:
        other = directory.add_home(session=s, name="Les Mimosas", by="test")
        stranger = directory.add_resident(session=s, home_id=other.id, first_name="Paul", by="test")
        far = tablet_service.add_tablet(session=s, home_id=other.id, name="Couloir", by="test")
        other_id, stranger_id, far_id = other.id, stranger.id, far.id
    http, _csrf = logged_in(backend, "ana@example.org")
    base = backend.base_url
    for path in (
        f"/staff/residents/{stranger_id}",
        f"/staff/residents/{new_id()}",
        f"/staff/homes/{other_id}/usage",
        f"/staff/homes/{other_id}/usage.csv",
    ):
        answer = http.get(base + path, timeout=10)
        assert answer.status_code == 404, path
        assert "Paul" not in answer.text
    fleet = http.get(f"{base}/staff/tablets", timeout=10)
    assert fleet.status_code == 200
    assert "Salon" in fleet.text and "Couloir" not in fleet.text and far_id not in fleet.text
    first = http.get(f"{base}/staff/", timeout=10)
    assert "Paul" not in first.text and "Les Mimosas" not in first.text
    assert http.get(f"{base}/staff/residents/{ids['residents'][0]}", timeout=10).status_code == 200
    # Logged out: the login page, never the figures.
    anonymous = requests.get(f"{base}/staff/residents/{ids['residents'][0]}", timeout=10)
    assert "Marcel" not in anonymous.text


@pytest.fixture
def pg_backend(tmp_path: Path, postgres_url: str) -> Iterator[RunningBackend]:  # noqa: F811
    with running_backend(tmp_path / "server", database_url=postgres_url) as b:
        yield b


def test_resident_page_and_alerts_on_postgres(pg_backend: RunningBackend) -> None:
    b = pg_backend
    assert b.db.engine.dialect.name == "postgresql"
    ids = b.seed(residents=2, contacts=1)
    b.approve(ids["residents"][0], ids["contacts"][0])
    add_staff(b, "ana@example.org", homes=[ids["home"]])
    marcel, odette = ids["residents"]
    today = paris_today()
    with b.db.session() as s:
        for rid in (marcel, odette):
            s.get(Resident, rid).created_at = datetime.now(UTC) - timedelta(days=40)
    add_daily(
        b,
        ids["home"],
        marcel,
        today - timedelta(days=1),
        calls_made=1,
        calls_received=2,
        call_seconds=125,
        activities={"clock": 2},
    )
    add_daily(b, ids["home"], odette, today - timedelta(days=30), calls_made=1, activities={})
    add_activity(b, ids["tablet"], marcel, "clock", datetime.now(UTC))
    http, _csrf = logged_in(b, "ana@example.org")
    page = http.get(f"{b.base_url}/staff/residents/{marcel}", timeout=10)
    assert page.status_code == 200
    calls = chart_rows(page.text, "resident-calls")
    yesterday, now_week = week_label(today - timedelta(days=1)), week_label(today)
    expected_calls = [1, 2, 0]
    assert calls[yesterday] == expected_calls
    activities = chart_rows(page.text, "resident-activities")
    assert activities[now_week][-1] == (3 if yesterday == now_week else 1)
    first = http.get(f"{b.base_url}/staff/", timeout=10)
    section = re.search(r'<section id="isolation".*?</section>', first.text, re.S)
    assert section and re.findall(r"<strong>([^<]+)</strong>", section.group(0)) == ["Odette"]
    assert "Aucun appel depuis 30 jours" in re.sub(r"\s+", " ", section.group(0))
    with b.db.session() as s:
        assert s.get(Tablet, ids["tablet"]) is not None
