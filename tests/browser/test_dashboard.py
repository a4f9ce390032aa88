"""The staff dashboard in real Chromium: log in through the real login page, approve a pending
request with a policy, see the contact reach a headless kiosk; screenshots of the main pages at
desktop (1280×800) and phone (412×860) widths (``staff-*.png`` in the test's folder, and in
``docs/screens/`` with ``LIENS_UPDATE_DOCS_SCREENS=1``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from backend.auth import accounts
from backend.models import ContactRequest
from backend.services import directory
from kiosk.store import Store
from tests.browser.screens import Screenshots
from tests.helpers import HeadlessKiosk, RunningBackend, contact_names

# A deadline, not a measure: on a loaded 2-core machine this test has taken over a minute,
# close to pytest-timeout's default 120 s.
pytestmark = pytest.mark.timeout(240)
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 412, "height": 860}


def seed(backend: RunningBackend) -> dict[str, Any]:
    ids = backend.seed(residents=2, contacts=2)
    marcel, odette = ids["residents"]
    julie, thomas = ids["contacts"]
    backend.approve(
        marcel,
        julie,
        {
            "windows": [{"days": [0, 1, 2, 3, 4], "start": "14:00", "end": "18:00"}],
            "calls_per_day": 3,
            "auto_answer_s": 10,
        },
    )
    backend.approve(odette, thomas, {"quiet_hours": {"start": "21:00", "end": "08:00"}})
    with backend.db.session() as s:
        lea = directory.add_resident(
            session=s, home_id=ids["home"], first_name="Léa", kind="youth", by="test"
        )
        father = directory.add_contact(
            session=s, home_id=ids["home"], display_name="Papa", relation="Papa", by="test"
        )
        directory.approve(session=s, resident_id=lea.id, contact_id=father.id, by="test")
        directory.revoke(
            session=s,
            resident_id=lea.id,
            contact_id=father.id,
            by="test",
            reason="Ordonnance du juge des enfants du 3 mars",
        )
        s.add(
            ContactRequest(
                home_id=ids["home"],
                source="relative",
                requester_name="Sophie Durand",
                relation="petite-fille",
                resident_name_given="Marcel",
                message="Bonjour, je suis la petite-fille de Marcel et j'habite à Lyon.",
                email="sophie@example.org",
            )
        )
        s.add(
            ContactRequest(
                home_id=ids["home"],
                resident_id=lea.id,
                source="tablet",
                requester_name="Papa",
                relation="father",
                resident_name_given="Léa",
            )
        )
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


def shoot(shots: Screenshots, page: Any, name: str) -> None:
    shots(page, f"staff-{name}", full_page=True)


def test_log_in_approve_a_request_with_a_policy_and_see_it_on_the_tablet(
    backend: RunningBackend, browser: Any, tmp_path: Path, shots: Screenshots
) -> None:
    ids = seed(backend)
    kiosk = HeadlessKiosk(
        tmp_path / "kiosk", backend.base_url, code=backend.issue_code(ids["tablet"])
    )
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    page = context.new_page()
    try:
        kiosk.wait_for(lambda e: e["event"] == "config", timeout=60)
        page.goto(f"{backend.base_url}/staff/")
        assert "/staff/login" in page.url  # not logged in yet
        page.get_by_label("Adresse e-mail").fill("claire@example.org")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url(re.compile(r".*/staff/$"))
        assert page.locator("h1").inner_text() == "Bonjour, Claire Petit"
        shoot(shots, page, "overview-desktop")

        page.get_by_role("link", name="Les Tilleuls").click()
        page.wait_for_url(re.compile(r".*/staff/homes/.*"))
        summary = page.locator("#resident-" + ids["residents"][0] + " .summary").inner_text()
        assert summary == "Lun–Ven 14 h–18 h · 3 appels/jour · décroche seul après 10 s"
        shoot(shots, page, "home-desktop")

        # The queue: Sophie asks for Marcel; approve on weekdays with auto-answer.
        page.get_by_role("link", name=re.compile("Demandes")).first.click()
        page.wait_for_url(re.compile(r".*/staff/requests"))
        card = page.locator(".request", has_text="Sophie Durand")
        # The child's request for "Papa" warns about the judge's order.
        warning = page.locator(".request", has_text="Léa").locator(".warning")
        assert "Ordonnance du juge" in warning.inner_text()
        card.locator("summary", has_text="Approuver").click()
        shoot(shots, page, "requests-desktop")
        for day in ("samedi", "dimanche"):
            card.get_by_role("checkbox", name=day, exact=True).uncheck()
        card.get_by_label("Décroche seul après").check()
        card.get_by_label("secondes avant de décrocher").fill("15")
        card.get_by_role("button", name="Approuver", exact=True).last.click()
        page.get_by_text("Sophie Durand peut maintenant être en lien avec Marcel.").wait_for()

        shown = kiosk.wait_for(
            lambda e: e["event"] == "config" and "Sophie Durand" in contact_names(e), timeout=20
        )
        assert shown["revision"] >= 2
        store = Store(tmp_path / "kiosk" / "kiosk.db")
        try:
            config = store.load_config() or {}
        finally:
            store.close()
        policy = next(
            c["policy"]
            for r in config["residents"]
            for c in r["contacts"]
            if c["display_name"] == "Sophie Durand"
        )
        assert policy["windows"][0]["days"] == [0, 1, 2, 3, 4]
        assert policy["auto_answer_s"] == 15

        # The other main pages, for the screenshots.
        with backend.db.session() as s:
            approval = directory.find_approval(s, ids["residents"][0], ids["contacts"][0])
            assert approval is not None
            approval_id = approval.id
        page.goto(f"{backend.base_url}/staff/approvals/{approval_id}")
        shoot(shots, page, "approval-desktop")
        page.get_by_label("Durée maximale d'un appel (minutes)").fill("0")
        page.get_by_role("button", name="Enregistrer").last.click()
        expect(page.locator("main")).to_contain_text("La durée maximale est un nombre de minutes")
        shoot(shots, page, "approval-error-desktop")
        page.goto(f"{backend.base_url}/staff/residents/{ids['residents'][1]}/approvals/new")
        shoot(shots, page, "new-approval-desktop")
        page.goto(f"{backend.base_url}/staff/audit")
        shoot(shots, page, "audit-desktop")
        page.goto(f"{backend.base_url}/staff/homes/{ids['home']}")
        page.locator("details.add", has_text="Ajouter une tablette").locator("summary").click()
        page.get_by_label("Où est-elle ? (son nom)").fill("Chambre 12")
        page.get_by_role("button", name="Ajouter et afficher son code").click()
        expect(page.locator(".code")).to_have_text(re.compile(r"^\d{4} \d{4}$"))
        shoot(shots, page, "code-desktop")

        # The same pages at phone width, with the same session.
        phone = browser.new_context(
            viewport=PHONE, locale="fr-FR", storage_state=context.storage_state()
        )
        try:
            small = phone.new_page()
            for name, path in (
                ("overview", "/staff/"),
                ("home", f"/staff/homes/{ids['home']}"),
                ("requests", "/staff/requests"),
                ("approval", f"/staff/approvals/{approval_id}"),
                ("audit", "/staff/audit"),
            ):
                small.goto(backend.base_url + path)
                if name == "requests":
                    small.locator(".request summary", has_text="Approuver").first.click()
                shoot(shots, small, f"{name}-phone")
            # Nothing is wider than the phone's screen.
            width = small.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"]
        finally:
            phone.close()
    finally:
        context.close()
        kiosk.stop()
