"""The usage pages in real Chromium: the first page with its isolation alert, a resident's weekly
charts (drawn, readable, with their numbers one click away), the home's figures and the fleet, at
desktop and phone widths. Screenshots go to the test's folder, and to ``docs/screens/staff-*.png``
with ``LIENS_UPDATE_DOCS_SCREENS=1``."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from backend.auth import accounts
from backend.models import Resident, Tablet, UsageDaily
from backend.services import directory, rollup
from tests.helpers import RunningBackend

DOCS_SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 412, "height": 860}


def shoot(page: Any, out: Path, name: str) -> Path:
    """Always into the test's folder (look at them); into docs/screens only on request."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"staff-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    if os.environ.get("LIENS_UPDATE_DOCS_SCREENS") == "1":
        DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SCREENS / path.name)
    return path


def seed(backend: RunningBackend) -> dict[str, Any]:
    ids = backend.seed(residents=3, contacts=2)
    marcel, odette, lucien = ids["residents"]
    backend.approve(marcel, ids["contacts"][0])
    backend.approve(odette, ids["contacts"][1])
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    now = datetime.now(UTC)
    with backend.db.session() as s:
        for rid in (marcel, odette, lucien):
            s.get(Resident, rid).created_at = now - timedelta(days=120)  # type: ignore[union-attr]
        # Twelve weeks of Marcel: a few calls a week, photos most days, fewer lately.
        for back in range(1, 84):
            day = today - timedelta(days=back)
            weekday = day.weekday()
            s.add(
                UsageDaily(
                    home_id=ids["home"],
                    resident_id=marcel,
                    day=day,
                    calls_made=1 if weekday in (1, 4) else 0,
                    calls_received=1 if weekday in (0, 3, 6) and back % 3 else 0,
                    calls_missed=1 if weekday == 2 and back > 40 else 0,
                    call_seconds=(600 if weekday in (0, 1, 3, 4, 6) else 0) + back * 7,
                    activities={"photos": 1 + back % 2, "memory": 1 if weekday == 5 else 0},
                    activity_seconds=300,
                )
            )
        # Odette's last call was 12 days ago: an isolation alert.
        s.add(
            UsageDaily(
                home_id=ids["home"],
                resident_id=odette,
                day=today - timedelta(days=12),
                calls_received=1,
                call_seconds=900,
                activities={},
            )
        )
        # Written here row by row, not by the roll-up: the residents' last call days with them.
        s.flush()
        rollup.refresh_last_call_days(s, [marcel, odette, lucien])
        tablet = s.get(Tablet, ids["tablet"])
        assert tablet is not None
        tablet.enrolled_at, tablet.online, tablet.last_seen = now, False, now - timedelta(hours=5)
        tablet.battery_percent, tablet.charging, tablet.free_storage_mb = 14, False, 12_000
        tablet.app_version = "0.1.0"
        directory.add_resident(session=s, home_id=ids["home"], first_name="Rose", by="test")
        accounts.add_staff(
            session=s,
            email="claire@example.org",
            name="Claire Petit",
            password=PASSWORD,
            role="admin",
            home_ids=[ids["home"]],
            by="test",
        )
    return ids


def test_first_page_alert_leads_to_the_residents_charts(
    backend: RunningBackend, browser: Any, tmp_path: Path
) -> None:
    ids = seed(backend)
    out = tmp_path / "screens"
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(f"{backend.base_url}/staff/login")
        page.get_by_label("Adresse e-mail").fill("claire@example.org")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url(re.compile(r".*/staff/$"))
        alerts = page.locator("#isolation")
        text = re.sub(r"\s+", " ", alerts.inner_text())
        assert "Odette" in text and "Aucun appel depuis 12 jours" in text
        assert "Marcel" not in text
        assert "Rose" in page.locator("#no-contact").inner_text()
        shoot(page, out, "first-page-alerts")

        # The alert's link opens Odette's page; then Marcel's, with twelve weeks drawn.
        alerts.get_by_role("link", name="Odette").click()
        page.wait_for_url(re.compile(r".*/staff/residents/.*"))
        assert "Aucun appel depuis 12 jours" in page.locator("main").inner_text()
        page.goto(f"{backend.base_url}/staff/residents/{ids['residents'][0]}")
        charts = page.locator("figure.chart")
        assert charts.count() == 3
        for n in range(3):
            box = charts.nth(n).locator("svg").bounding_box()
            assert box is not None and box["width"] > 400 and box["height"] > 150
        calls = page.get_by_role("img", name="Appels par semaine")
        assert calls.count() == 1
        # Bars are drawn: pygal draws one rect per week and series.
        assert charts.nth(0).locator("svg rect.rect").count() == 36
        numbers = charts.nth(0).locator("details")
        numbers.locator("summary").click()
        assert numbers.locator("tbody tr").count() == 12
        shoot(page, out, "resident")

        page.goto(f"{backend.base_url}/staff/homes/{ids['home']}/usage")
        assert page.locator("figure.chart").count() == 3
        with page.expect_download() as download_info:
            page.get_by_role("link", name=re.compile("Télécharger les chiffres")).click()
        download = download_info.value
        assert re.fullmatch(
            r"liens-les-tilleuls-\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.csv", download.suggested_filename
        )
        shoot(page, out, "home-usage")

        page.goto(f"{backend.base_url}/staff/tablets")
        row = page.locator(f"#tablet-{ids['tablet']}").inner_text()
        assert "Hors ligne depuis 5 heures" in row and "Batterie faible (14 %)" in row
        shoot(page, out, "fleet")

        # At phone width: the charts shrink to the screen, nothing scrolls sideways.
        phone = browser.new_context(
            viewport=PHONE, locale="fr-FR", storage_state=context.storage_state()
        )
        try:
            small = phone.new_page()
            for name, path in (
                ("resident-phone", f"/staff/residents/{ids['residents'][0]}"),
                ("first-page-phone", "/staff/"),
                ("fleet-phone", "/staff/tablets"),
            ):
                small.goto(backend.base_url + path)
                shoot(small, out, name)
                if name != "fleet-phone":  # the fleet's table scrolls inside its own box
                    width = small.evaluate("document.documentElement.scrollWidth")
                    assert width <= PHONE["width"], (name, width)
        finally:
            phone.close()
    finally:
        context.close()
