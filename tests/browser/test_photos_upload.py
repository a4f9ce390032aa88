"""Family photos in real Chromium: a relative sends three photos from their page (with the
progress bar), staff approve them on the real dashboard, and the headless kiosk's cached
configuration lists them. Screenshots of the family page (phone and desktop) and of the
moderation queue go to the test's folder (and to ``docs/screens/`` with
``LIENS_UPDATE_DOCS_SCREENS=1``)."""

from __future__ import annotations

import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from backend.auth import accounts
from backend.photos import service as photo_service
from backend.services import directory
from kiosk.store import Store
from tests.browser.screens import Screenshots
from tests.helpers import HeadlessKiosk, RunningBackend

# A deadline, not a measure: on a loaded 2-core machine this test has taken over a minute,
# close to pytest-timeout's default 120 s.
pytestmark = pytest.mark.timeout(240)
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 412, "height": 860}
LOADED = "i => i.complete && i.naturalWidth > 0"


def photo_file(
    path: Path, colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (2400, 1800)
) -> Path:
    """A JPEG with some texture (2400 × 1800 by default: about 1 MB, the upload takes a
    moment)."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, colour)
    pixels = image.load()
    assert pixels is not None
    for _ in range(width * height // 72):
        x, y = rng.randrange(width), rng.randrange(height)
        pixels[x, y] = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    image.save(path, "JPEG", quality=95)
    return path


def seed(backend: RunningBackend) -> dict[str, Any]:
    with backend.db.session() as s:
        home = directory.add_home(session=s, name="Maison d'enfants Les Cèdres", by="test")
        lea = directory.add_resident(
            session=s, home_id=home.id, first_name="Léa", kind="youth", by="test"
        )
        noe = directory.add_resident(
            session=s, home_id=home.id, first_name="Noé", kind="youth", by="test"
        )
        mum = directory.add_contact(
            session=s, home_id=home.id, display_name="Maman", relation="mère", by="test"
        )
        for child in (lea, noe):
            directory.approve(session=s, resident_id=child.id, contact_id=mum.id, by="test")
        from backend.services import tablets as tablet_service

        tablet = tablet_service.add_tablet(
            session=s, home_id=home.id, name="Chambre de Léa", resident_ids=[lea.id], by="test"
        )
        accounts.add_staff(
            session=s,
            email="educ@example.org",
            name="Karim Benali",
            password=PASSWORD,
            home_ids=[home.id],
            by="test",
        )
        return {"home": home.id, "lea": lea.id, "token": mum.link_token, "tablet": tablet.id}


def cached_photos(kiosk_dir: Path, resident_id: str) -> list[dict[str, Any]]:
    store = Store(kiosk_dir / "kiosk.db")
    try:
        config = store.load_config() or {"residents": []}
    finally:
        store.close()
    for resident in config["residents"]:
        if resident["id"] == resident_id:
            return list(resident.get("photos", []))
    return []


def test_three_photos_sent_from_a_phone_approved_by_staff_reach_the_kiosk(
    backend: RunningBackend, browser: Any, tmp_path: Path, shots: Screenshots
) -> None:
    ids = seed(backend)
    files = [
        photo_file(tmp_path / "anniversaire.jpg", (200, 80, 60), 1),
        photo_file(tmp_path / "plage.jpg", (60, 140, 200), 2),
        photo_file(tmp_path / "chat.jpg", (120, 160, 90), 3),
    ]
    kiosk = HeadlessKiosk(
        tmp_path / "kiosk", backend.base_url, code=backend.issue_code(ids["tablet"])
    )
    phone = browser.new_context(viewport=PHONE, locale="fr-FR", is_mobile=True, has_touch=True)
    staff = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    try:
        kiosk.wait_for(lambda e: e["event"] == "config", timeout=60)
        page = phone.new_page()
        page.goto(f"{backend.base_url}/f/{ids['token']}")
        page.get_by_role("heading", name="Envoyer des photos").wait_for()
        page.get_by_role("checkbox", name="Léa").check()
        page.locator("#photo-input").set_input_files([str(f) for f in files])
        items = page.locator("#photo-chosen .photo-item")
        items.nth(2).wait_for()
        assert items.count() == 3
        for index, caption in enumerate(["Ton anniversaire", "À la plage", "Minou"]):
            items.nth(index).get_by_placeholder("Légende (facultative)").fill(caption)
        shots(page, "family-photos-chosen-phone", full_page=True)
        page.get_by_role("button", name="Envoyer", exact=True).click()
        page.get_by_text("Vos photos ont été envoyées.").wait_for(timeout=30000)
        progress = page.evaluate("window.liensPhotos.progress")
        assert progress[-1] == 100
        assert any(0 < p < 100 for p in progress), progress  # it moved while sending
        assert (
            page.locator("#photo-progress-text").inner_text() == "Envoi de la photo 3 sur 3… 100 %"
        )
        sent = page.locator("#photo-list .photo-sent")
        sent.nth(2).wait_for()
        assert sent.count() == 3
        assert page.locator("#photo-list").inner_text().count("En attente de l'équipe") == 3
        shots(page, "family-photos-sent-phone", full_page=True)
        assert cached_photos(tmp_path / "kiosk", ids["lea"]) == []  # a child's: moderated

        # Staff approve them on the real dashboard.
        desk = staff.new_page()
        desk.goto(f"{backend.base_url}/staff/")
        desk.get_by_label("Adresse e-mail").fill("educ@example.org")
        desk.get_by_label("Mot de passe").fill(PASSWORD)
        desk.get_by_role("button", name="Se connecter").click()
        desk.wait_for_url(re.compile(r".*/staff/$"))
        assert "3\nphotos à vérifier" in desk.locator(".tile").all_inner_texts()
        desk.get_by_role("link", name=re.compile("photos à vérifier")).click()
        desk.wait_for_url(re.compile(r".*/staff/photos"))
        cards = desk.locator(".photo-card")
        assert cards.count() == 3
        desk.wait_for_function(f"[...document.querySelectorAll('.photo-card img')].every({LOADED})")
        shots(desk, "staff-photos-desktop", full_page=True)
        for index in range(3):
            cards.nth(index).get_by_role("button", name="Approuver").click()
            cards.nth(index).get_by_text(
                "Photo acceptée : Léa la verra sur la tablette."
            ).wait_for()

        # The kiosk's cached configuration lists the three photos.
        deadline = time.monotonic() + 15
        while len(photos := cached_photos(tmp_path / "kiosk", ids["lea"])) < 3:
            assert time.monotonic() < deadline, f"kiosk has {photos}"
            time.sleep(0.2)
        assert sorted(p["caption"] for p in photos) == ["Minou", "Ton anniversaire", "À la plage"]
        assert all(
            p["from"] == "Maman" and p["url"].startswith("/api/v1/tablets/photos/") for p in photos
        )

        # A heart from the tablet shows on the relative's page.
        with backend.db.session() as s:
            photo_service.record_heart(
                s,
                tablet_id=ids["tablet"],
                event_id=uuid.uuid4().hex,
                data={"photo_id": photos[0]["id"], "resident_id": ids["lea"]},
            )
        page.reload()
        page.get_by_text("Léa a aimé votre photo ❤").wait_for()
        assert page.locator("#photo-list").inner_text().count("Sur la tablette de Léa") == 3
        page.wait_for_function(f"[...document.querySelectorAll('#photo-list img')].every({LOADED})")
        shots(page, "family-photos-approved-phone", full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        wide = staff.new_page()
        wide.goto(f"{backend.base_url}/f/{ids['token']}")
        wide.get_by_text("Léa a aimé votre photo ❤").wait_for()
        shots(wide, "family-photos-desktop", full_page=True)
    finally:
        phone.close()
        staff.close()
        kiosk.stop()


def test_a_file_that_is_not_a_photo_gets_a_sentence_next_to_it(
    backend: RunningBackend, browser: Any, tmp_path: Path, shots: Screenshots
) -> None:
    ids = seed(backend)
    fake = tmp_path / "vacances.jpg"
    fake.write_text("Ceci est une liste de courses, pas une photo.\n" * 20)
    context = browser.new_context(viewport=PHONE, locale="fr-FR")
    try:
        page = context.new_page()
        page.goto(f"{backend.base_url}/f/{ids['token']}")
        page.get_by_role("checkbox", name="Léa").check()
        page.locator("#photo-input").set_input_files(str(fake))
        page.get_by_role("button", name="Envoyer", exact=True).click()
        item = page.locator("#photo-chosen .photo-item.has-error")
        item.get_by_text("Ce fichier n'est pas une photo.").wait_for()
        assert "0 photos envoyées sur 1" in page.locator("#photo-message").inner_text()
        shots(page, "family-photos-error-phone", full_page=True)
    finally:
        context.close()
