"""Family photos end to end: a relative's phone, the staff dashboard, two real tablets.

A mother sends three photos to her daughter in a children's home from her personal page (the
real upload form, its progress bar) in headless Chromium. A child's photos wait for staff: until
an educator approves them in the real dashboard (the login page, the moderation queue, its
"Approuver" buttons), neither tablet has them. Then:

- the headless kiosk (``liens kiosk --headless``, a real ``KioskCore`` subprocess) receives a
  configuration listing them and its photo cache downloads them: every file hashes to the
  SHA-256 the configuration announced, which is the backend's stored file;
- the Kivy app of a second tablet in the same child's room, running for real under Xvfb
  (``tests.ui.photos_live_driver``), shows them in its slideshow, newest first, each with its
  caption, and showed "no photos yet" before the approval.

Nothing is faked between the relative's file input and the picture on the tablet.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from backend.auth import accounts
from backend.models import Tablet
from backend.photos.storage import PhotoStore
from backend.services import directory
from backend.services import tablets as tablet_service
from kiosk.core import KioskCore
from kiosk.settings import KioskSettings
from kiosk.store import Store
from tests.browser.screens import Screenshots
from tests.browser.test_photos_upload import LOADED, photo_file
from tests.helpers import HeadlessKiosk, RunningBackend
from tests.ui.conftest import scenario_env, xvfb_display  # noqa: F401 - the fixture, for this test
from tests.ui.test_live import LiveApp

# A deadline, not a measure: pytest-timeout's default 120 s was nearly reached on a loaded
# machine (111 s), where this test takes about 30 s alone.
pytestmark = [pytest.mark.ui, pytest.mark.timeout(300)]

PASSWORD = "correct horse battery staple"
PHONE = {"width": 412, "height": 860}
DESKTOP = {"width": 1280, "height": 800}
# (file, colour, caption): sent in this order, so the last one is the newest.
SENT = [
    ("anniversaire.jpg", (200, 80, 60), "Ton anniversaire"),
    ("plage.jpg", (60, 140, 200), "À la plage"),
    ("chat.jpg", (120, 160, 90), "Minou"),
]


def seed(backend: RunningBackend) -> dict[str, Any]:
    """A children's home; Léa (youth: her photos are moderated), her mother, two tablets that
    serve Léa (the headless one and the Kivy one), an educator with a password."""
    with backend.db.session() as s:
        home = directory.add_home(session=s, name="Maison d'enfants Les Cèdres", by="test")
        lea = directory.add_resident(
            session=s, home_id=home.id, first_name="Léa", kind="youth", by="test"
        )
        mum = directory.add_contact(
            session=s, home_id=home.id, display_name="Maman", relation="mère", by="test"
        )
        directory.approve(session=s, resident_id=lea.id, contact_id=mum.id, by="test")
        headless = tablet_service.add_tablet(
            session=s, home_id=home.id, name="Chambre de Léa", resident_ids=[lea.id], by="test"
        )
        windowed = tablet_service.add_tablet(
            session=s, home_id=home.id, name="Bureau de Léa", resident_ids=[lea.id], by="test"
        )
        accounts.add_staff(
            session=s,
            email="educ@example.org",
            name="Karim Benali",
            password=PASSWORD,
            home_ids=[home.id],
            by="test",
        )
        return {
            "lea": lea.id,
            "token": mum.link_token,
            "headless": headless.id,
            "windowed": windowed.id,
        }


def config_photos(backend: RunningBackend, tablet_id: str) -> list[dict[str, Any]]:
    """The photos the backend's configuration for ``tablet_id`` lists now (its only resident)."""
    with backend.db.session() as s:
        tablet = s.get(Tablet, tablet_id)
        assert tablet is not None
        config = tablet_service.build_config(s, tablet)
    return [p for r in config["residents"] for p in r.get("photos", [])]


def kiosk_photos(kiosk_dir: Path) -> list[dict[str, Any]]:
    """The photos of the configuration the kiosk has stored (what it last received)."""
    store = Store(kiosk_dir / "kiosk.db")
    try:
        config = store.load_config() or {"residents": []}
    finally:
        store.close()
    return [p for r in config["residents"] for p in r.get("photos", [])]


def centre_colour(png: Path) -> tuple[int, ...]:
    """The mean colour of a 60 × 60 square in the middle of a screenshot."""
    with Image.open(png) as image:
        w, h = image.size
        patch = image.convert("RGB").crop((w // 2 - 30, h // 2 - 30, w // 2 + 30, h // 2 + 30))
        return tuple(round(c) for c in ImageStat.Stat(patch).mean)


def near(colour: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 25) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_three_photos_sent_approved_by_staff_reach_the_kiosk_cache_and_the_kivy_slideshow(
    backend: RunningBackend,
    browser: Any,
    xvfb_display: str,  # noqa: F811
    tmp_path: Path,
    shots: Screenshots,
) -> None:
    started = time.monotonic()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - started, 1)

    ids = seed(backend)
    # The Kivy tablet: enrolled with a real one-time code, then the real app under Xvfb.
    windowed_dir = tmp_path / "kivy-tablet"
    core = KioskCore(KioskSettings(data_dir=windowed_dir, server_url=backend.base_url))
    core.enrol(backend.base_url, backend.issue_code(ids["windowed"]))
    core.close()
    app = LiveApp(
        windowed_dir,
        tmp_path / "kivy-out",
        scenario_env(xvfb_display, tmp_path / "kivy-home"),
        module="tests.ui.photos_live_driver",
    )
    headless_dir = tmp_path / "headless-tablet"
    kiosk = HeadlessKiosk(headless_dir, backend.base_url, code=backend.issue_code(ids["headless"]))
    mark("apps started")
    files = [
        photo_file(tmp_path / name, colour, n, size=(1600, 1200))
        for n, (name, colour, _c) in enumerate(SENT)
    ]
    phone = browser.new_context(viewport=PHONE, locale="fr-FR", is_mobile=True, has_touch=True)
    staff = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    try:
        # 1. The mother sends three photos, each with its caption, from her phone.
        mark("files made")
        page = phone.new_page()
        page.goto(f"{backend.base_url}/f/{ids['token']}")
        page.get_by_role("heading", name="Envoyer des photos").wait_for()
        # Léa is her only child here: the form sends to her without asking.
        assert page.locator('input[name="resident"]').evaluate("box => box.checked") is True
        page.locator("#photo-input").set_input_files([str(f) for f in files])
        items = page.locator("#photo-chosen .photo-item")
        items.nth(2).wait_for()
        assert items.count() == 3
        for index, (_name, _colour, caption) in enumerate(SENT):
            items.nth(index).get_by_placeholder("Légende (facultative)").fill(caption)
        page.get_by_role("button", name="Envoyer", exact=True).click()
        page.get_by_text("Vos photos ont été envoyées.").wait_for(timeout=30_000)
        progress = page.evaluate("window.liensPhotos.progress")
        assert progress[-1] == 100 and any(0 < p < 100 for p in progress), progress
        assert page.locator("#photo-list").inner_text().count("En attente de l'équipe") == 3
        shots(page, "family-photos-e2e-sent-phone", full_page=True)
        mark("sent")

        # 2. Not approved yet: no configuration lists them, no tablet has them.
        kiosk.wait_for(lambda e: e["event"] == "config", timeout=60)
        assert config_photos(backend, ids["headless"]) == []
        assert config_photos(backend, ids["windowed"]) == []
        assert kiosk_photos(headless_dir) == []
        assert list((headless_dir / "photos").glob("*.jpg")) == []
        ready = app.expect("READY", timeout=60)
        assert ready["resident_id"] == ids["lea"] and "photos" in ready["activities"]
        app.send("BEFORE")  # the app opens its slideshow while the educator logs in

        # 3. The educator logs in and approves them in the moderation queue, oldest first.
        desk = staff.new_page()
        desk.goto(f"{backend.base_url}/staff/")
        desk.get_by_label("Adresse e-mail").fill("educ@example.org")
        desk.get_by_label("Mot de passe").fill(PASSWORD)
        desk.get_by_role("button", name="Se connecter").click()
        desk.wait_for_url(re.compile(r".*/staff/$"))
        mark("kivy ready, staff logged in")
        before = app.expect("EMPTY", timeout=40)
        assert before["count"] == 0 and before["files"] == []
        assert before["empty_visible"] and "Pas encore de photos" in before["empty_text"]
        mark("kivy empty")
        desk.get_by_role("link", name=re.compile("photos à vérifier")).click()
        desk.wait_for_url(re.compile(r".*/staff/photos"))
        cards = desk.locator(".photo-card")
        cards.nth(2).wait_for()
        assert cards.count() == 3
        queue = [cards.nth(i).inner_text() for i in range(3)]
        assert [caption in text for text, (_n, _c, caption) in zip(queue, SENT, strict=True)] == [
            True
        ] * 3, queue
        desk.wait_for_function(f"[...document.querySelectorAll('.photo-card img')].every({LOADED})")
        shots(desk, "staff-photos-e2e-queue", full_page=True)
        for index in range(3):
            cards.nth(index).get_by_role("button", name="Approuver").click()
            cards.nth(index).get_by_text("Photo acceptée : Léa la verra sur la tablette.").wait_for(
                timeout=15_000
            )
        approved_at = time.monotonic()
        mark("approved")

        # 4a. The headless kiosk: a config listing the three, each file checked by its SHA-256.
        listed = config_photos(backend, ids["headless"])
        newest_first = [caption for _n, _c, caption in reversed(SENT)]
        assert [p["caption"] for p in listed] == newest_first  # the last approved first
        wanted = {p["sha256"] for p in listed} | {p["thumb_sha256"] for p in listed}
        cache = headless_dir / "photos"
        deadline = time.monotonic() + 30
        while not (
            len(kiosk_photos(headless_dir)) == 3
            and all((cache / f"{sha}.jpg").is_file() for sha in wanted)
        ):
            assert time.monotonic() < deadline, (
                f"kiosk config {kiosk_photos(headless_dir)}, files {sorted(cache.glob('*'))}"
            )
            time.sleep(0.1)
        headless_seconds = time.monotonic() - approved_at
        assert sorted(p["id"] for p in kiosk_photos(headless_dir)) == sorted(
            p["id"] for p in listed
        )
        store = PhotoStore(backend.settings.photos_dir)
        originals = {sha256(f) for f in files}
        for photo in listed:
            for key, thumb in (("sha256", False), ("thumb_sha256", True)):
                cached = cache / f"{photo[key]}.jpg"
                assert sha256(cached) == photo[key]
                assert cached.read_bytes() == store.path(photo["sha256"], thumb=thumb).read_bytes()
            assert photo["sha256"] not in originals  # re-encoded by the backend (no EXIF)
            assert photo["from"] == "Maman"

        # 4b. The Kivy slideshow: the three, newest first, with their captions.
        mark("headless checked")
        app.send("GO")
        shown = app.expect("SHOWN", timeout=60)
        mark("kivy shown")
        result = app.expect("RESULT", timeout=30)
        mark("kivy stopped")
    finally:
        phone.close()
        staff.close()
        kiosk.stop()
        app.stop()
    assert result.get("ok"), result.get("error")
    slides = shown["slides"]
    assert [s["caption"] for s in slides] == newest_first
    assert [s["source"] for s in slides] == [f"{p['sha256']}.jpg" for p in listed]
    assert [s["position"] for s in slides] == ["1 sur 3", "2 sur 3", "3 sur 3"]
    assert all(s["sender"] == "De la part de Maman" and s["visible"] for s in slides), slides
    assert all(s["new"] == "Nouveau" for s in slides), slides  # none seen before
    assert [s["texture"] for s in slides] == [[p["width"], p["height"]] for p in listed]
    assert result["after_last"]["caption"] == newest_first[0]
    assert {f"{sha}.jpg" for sha in wanted} <= set(result["cached"])
    # What the window drew: the newest photo fills the middle of the screen; before, nothing.
    newest_colour = SENT[-1][1]
    assert near(centre_colour(tmp_path / "kivy-out" / "photos-live.png"), newest_colour)
    assert not near(centre_colour(tmp_path / "kivy-out" / "photos-live-before.png"), newest_colour)
    total = time.monotonic() - started
    print(  # noqa: T201 - figures for the report
        f"\nphotos e2e: headless cache complete {headless_seconds:.1f} s after the last "
        f"approval, Kivy cache {shown['cached_after_s']} s after GO, slideshow open "
        f"{result['opened_after_s']} s after GO, whole test {total:.1f} s; steps {marks}"
    )
