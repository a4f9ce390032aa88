"""The privacy page and the erasure confirmation in real Chromium.

``/confidentialite`` is public, French by default with English on request, and gives a home's own
retention when opened from that home (the family page's footer links to it). An administrator
sees the resident's privacy buttons and a confirmation page that says what erasing removes.
Screenshots (``privacy-*.png``) go to the test's folder, and to ``docs/screens/`` only with
``LIENS_UPDATE_DOCS_SCREENS=1``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from backend.auth import accounts
from backend.models import Home, Resident
from tests.helpers import RunningBackend

PASSWORD = "correct horse battery staple"
DOCS_SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"


def shoot(page: Any, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"privacy-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
    if os.environ.get("LIENS_UPDATE_DOCS_SCREENS") == "1":
        DOCS_SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SCREENS / path.name)
    return path


def test_privacy_page_in_both_languages_with_the_homes_retention(
    backend: RunningBackend, browser: Any, tmp_path: Path
) -> None:
    b = backend
    ids = b.seed(residents=1, contacts=1)
    b.approve(ids["residents"][0], ids["contacts"][0])
    with b.db.session() as s:
        home = s.get(Home, ids["home"])
        assert home is not None
        home.slug = "les-tilleuls"
        home.retention_days = 30
    context = browser.new_context(viewport={"width": 1000, "height": 800}, locale="fr-FR")
    page = context.new_page()
    try:
        # Anyone, no login: Liens' defaults.
        page.goto(f"{b.base_url}/confidentialite")
        assert page.locator("h1").inner_text() == "Ce que Liens garde, et combien de temps"
        assert page.get_by_test_id("retention-days").inner_text() == "90 jours"
        assert page.get_by_text("Ni le son ni l'image d'un appel").is_visible()
        assert page.get_by_text("EXIF").is_visible()

        # From the relative's page, the footer's link names the home: its own 30 days.
        page.goto(f"{b.base_url}/f/{ids['tokens'][0]}")
        page.get_by_role("link", name="Confidentialité").click()
        page.wait_for_url(re.compile(r".*/confidentialite\?home=les-tilleuls$"))
        assert page.get_by_test_id("retention-days").inner_text() == "30 jours"
        assert page.get_by_text("Cette page décrit Liens à Les Tilleuls.").is_visible()
        shoot(page, tmp_path, "page-fr")

        page.get_by_role("link", name="English").click()
        page.wait_for_url(re.compile(r".*lang=en.*"))
        assert page.locator("h1").inner_text() == "What Liens keeps, and for how long"
        assert page.get_by_test_id("retention-days").inner_text() == "30 days"
        shoot(page, tmp_path, "page-en")

        page.goto(f"{b.base_url}/confidentialite?home=nowhere")
        assert page.get_by_text("Cet établissement n'est pas connu ici").is_visible()
    finally:
        context.close()


def test_admin_sees_the_privacy_buttons_and_a_plain_confirmation(
    backend: RunningBackend, browser: Any, tmp_path: Path
) -> None:
    b = backend
    ids = b.seed(residents=2, contacts=2)
    jeanne, odette = ids["residents"]
    b.approve(jeanne, ids["contacts"][0])
    b.approve(jeanne, ids["contacts"][1])
    b.approve(odette, ids["contacts"][1])
    with b.db.session() as s:
        resident = s.get(Resident, jeanne)
        assert resident is not None
        resident.first_name, resident.last_name = "Jeanne", "Martin"
        accounts.add_staff(
            session=s,
            email="claire@example.org",
            name="Claire Petit",
            password=PASSWORD,
            role="admin",
            home_ids=[],
            by="test",
        )
    context = browser.new_context(viewport={"width": 1000, "height": 800}, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(f"{b.base_url}/staff/login")
        page.get_by_label("Adresse e-mail").fill("claire@example.org")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url(re.compile(r".*/staff/$"))
        assert page.get_by_role("link", name="Confidentialité : ce que Liens garde").is_visible()

        resident_page = page.goto(f"{b.base_url}/staff/residents/{jeanne}")
        assert resident_page is not None
        if resident_page.status == 200 and page.get_by_test_id("erase").count():
            # The resident page (the usage work) includes the privacy partial.
            assert page.get_by_test_id("export").is_visible()
            page.locator("#privacy-title").scroll_into_view_if_needed()
            shoot(page, tmp_path, "resident")
            page.get_by_test_id("erase").click()
        else:
            page.goto(f"{b.base_url}/staff/residents/{jeanne}/erase")
        page.wait_for_url(re.compile(r".*/erase$"))
        heading = page.locator("h1").inner_text()
        assert heading == "Effacer Jeanne Martin et tout ce que Liens garde à son sujet :"
        assert page.get_by_text("Gardés, car liés à d'autres résidents : Thomas.").is_visible()
        shoot(page, tmp_path, "erase-confirm")
        # The box must be ticked: the browser itself refuses to send the form without it.
        page.get_by_test_id("erase-now").click()
        assert "/erase" in page.url
        page.get_by_label(re.compile("Je comprends")).check()
        page.get_by_test_id("erase-now").click()
        page.wait_for_url(re.compile(r".*/erased\?entry=\d+$"))
        assert page.locator("h1").inner_text() == "Le résident a été effacé"
        shoot(page, tmp_path, "erase-done")
    finally:
        context.close()
    with b.db.session() as s:
        assert s.get(Resident, jeanne) is None and s.get(Resident, odette) is not None
