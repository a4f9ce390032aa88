"""Portraits of residents and contacts: staff upload them from the dashboard, the tablet's
configuration lists them and the tablet downloads them (only its own). See
backend/dashboard/portraits.py."""

from __future__ import annotations

import hashlib
import html
import io
import queue
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from sqlalchemy import select

from backend.models import AuditEntry, Contact, Resident
from kiosk.core import KioskCore
from kiosk.photos import PhotoCache
from kiosk.settings import KioskSettings
from tests.helpers import RunningBackend
from tests.integration.test_authorization import Browser, add_staff, log_in
from tests.integration.test_photos import jpeg_with_gps, retained_config, seed


@pytest.fixture
def world(backend: RunningBackend) -> dict[str, Any]:
    ids = seed(backend)
    add_staff(backend, "aide@example.org", "staff", [ids["home"]])
    with backend.db.session() as s:
        other_home = s.scalars(select(Resident.home_id).where(Resident.first_name == "Bob")).one()
    add_staff(backend, "ailleurs@example.org", "staff", [other_home])
    return ids


def post_portrait(
    b: RunningBackend,
    who: Browser,
    kind: str,
    target_id: str,
    data: bytes,
    *,
    name: str = "portrait.jpg",
    csrf: str | None = None,
) -> requests.Response:
    """As the dashboard's plain form sends it: multipart, the token as a form field."""
    return who.http.post(
        f"{b.base_url}/staff/{kind}/{target_id}/portrait?lang=en",
        files=[
            ("csrf_token", (None, who.csrf if csrf is None else csrf)),
            ("portrait", (name, data, "image/jpeg")),
        ],
        headers={"Accept": "text/html"},
        allow_redirects=False,
        timeout=30,
    )


def portraits_dir_files(b: RunningBackend) -> list[str]:
    root = b.settings.photos_dir / "portraits"
    if not root.exists():
        return []
    return sorted(p.name for p in root.rglob("*.jpg") if "tmp" not in p.parts)


def error_of(r: requests.Response) -> str:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', r.text)
    assert match, r.text[:2000]
    return html.unescape(match.group(1))


def test_a_resident_and_a_contact_portrait_reach_the_tablet_without_exif(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    staff = log_in(backend, "aide@example.org")
    r = post_portrait(backend, staff, "residents", world["marcel"], jpeg_with_gps(3000, 2000))
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(f"/staff/homes/{world['home']}")
    r = post_portrait(
        backend, staff, "contacts", world["julie"], jpeg_with_gps(800, 600, "navy"), name="j.png"
    )
    assert r.status_code == 303, r.text

    with backend.db.session() as s:
        marcel, julie = s.get(Resident, world["marcel"]), s.get(Contact, world["julie"])
        assert marcel is not None and julie is not None
        resident_sha, contact_sha = marcel.portrait_id, julie.portrait_id
        assert resident_sha and contact_sha and resident_sha != contact_sha
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.actor != "test")))
        assert "resident.portrait" in actions and "contact.portrait" in actions
    stored = backend.settings.photos_dir / "portraits" / resident_sha[:2] / f"{resident_sha}.jpg"
    raw = stored.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == resident_sha
    with Image.open(stored) as image:
        assert image.size == (427, 640)  # turned upright (EXIF orientation), at most 640 px
        assert len(image.getexif()) == 0
        assert [marker for marker, _ in image.applist] == ["APP0"]
    for secret in (b"Exif", b"PhoneMaker", b"secret comment"):
        assert secret not in raw

    # The home page shows both thumbnails, and they are served to this home's staff.
    page = staff.http.get(f"{backend.base_url}/staff/homes/{world['home']}", timeout=10)
    assert page.status_code == 200
    for kind, target_id in (("residents", world["marcel"]), ("contacts", world["julie"])):
        assert f"/staff/{kind}/{target_id}/portrait?v=" in page.text
        thumb = staff.http.get(f"{backend.base_url}/staff/{kind}/{target_id}/portrait", timeout=10)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumb.content)).size) <= 320

    # The tablet's configuration carries both, and the tablet downloads them.
    config = retained_config(backend, world["tablet"], world["password"])
    marcel_entry = next(r for r in config["residents"] if r["id"] == world["marcel"])
    lea_entry = next(r for r in config["residents"] if r["id"] == world["lea"])
    assert marcel_entry["portrait"] == {
        "url": f"/api/v1/tablets/portraits/{resident_sha}",
        "sha256": resident_sha,
    }
    assert lea_entry["portrait"] is None
    [julie_tile] = marcel_entry["contacts"]
    assert julie_tile["photo_url"] == f"/api/v1/tablets/portraits/{contact_sha}"
    assert julie_tile["photo_sha256"] == contact_sha

    auth = (world["tablet"], world["password"])
    for sha in (resident_sha, contact_sha):
        url = f"{backend.base_url}/api/v1/tablets/portraits/{sha}"
        got = requests.get(url, auth=auth, timeout=10)
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha
        assert got.headers["etag"] == f'"{sha}"'
        part = requests.get(url, auth=auth, headers={"Range": "bytes=10-"}, timeout=10)
        assert part.status_code == 206 and part.content == got.content[10:]
        # Not for another home's tablet, nor without credentials.
        other = (world["other_tablet"], world["other_password"])
        assert requests.get(url, auth=other, timeout=10).status_code == 404
        assert requests.get(url, timeout=10).status_code == 401
    unknown = f"{backend.base_url}/api/v1/tablets/portraits/{'0' * 64}"
    assert requests.get(unknown, auth=auth, timeout=10).status_code == 404

    # A new portrait replaces the old one; the old file goes.
    r = post_portrait(backend, staff, "residents", world["marcel"], jpeg_with_gps(500, 500, "red"))
    assert r.status_code == 303
    with backend.db.session() as s:
        marcel = s.get(Resident, world["marcel"])
        assert marcel is not None and marcel.portrait_id not in (None, resident_sha)
    assert f"{resident_sha}.jpg" not in portraits_dir_files(backend)
    old = f"{backend.base_url}/api/v1/tablets/portraits/{resident_sha}"
    assert requests.get(old, auth=auth, timeout=10).status_code == 404


def test_a_file_that_is_not_a_photo_is_refused_with_a_sentence_and_nothing_kept(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    staff = log_in(backend, "aide@example.org")
    r = post_portrait(
        backend, staff, "residents", world["marcel"], b"just some text, not a photo\n" * 40
    )
    assert r.status_code == 415
    assert error_of(r) == "This file is not a photo."
    r = post_portrait(backend, staff, "contacts", world["julie"], b"", name="empty.jpg")
    assert r.status_code == 400
    assert error_of(r) == "Choose a photo to send."
    with backend.db.session() as s:
        assert s.get(Resident, world["marcel"]).portrait_id is None
        assert s.get(Contact, world["julie"]).portrait_id is None
    assert portraits_dir_files(backend) == []
    tmp = backend.settings.photos_dir / "portraits" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_staff_of_another_home_get_404_and_a_missing_token_403(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    elsewhere = log_in(backend, "ailleurs@example.org")
    for kind, target_id in (("residents", world["marcel"]), ("contacts", world["julie"])):
        r = post_portrait(backend, elsewhere, kind, target_id, jpeg_with_gps(300, 200))
        assert r.status_code == 404
        thumb = elsewhere.http.get(
            f"{backend.base_url}/staff/{kind}/{target_id}/portrait", timeout=10
        )
        assert thumb.status_code == 404
    staff = log_in(backend, "aide@example.org")
    r = post_portrait(
        backend, staff, "residents", world["marcel"], jpeg_with_gps(300, 200), csrf="forged"
    )
    assert r.status_code == 403
    with backend.db.session() as s:
        assert s.get(Resident, world["marcel"]).portrait_id is None
    assert portraits_dir_files(backend) == []


def test_the_tablet_caches_the_portraits_for_its_tiles_and_picker(
    backend: RunningBackend, world: dict[str, Any], tmp_path: Path
) -> None:
    staff = log_in(backend, "aide@example.org")
    for kind, target_id in (("residents", world["lea"]), ("contacts", world["julie"])):
        r = post_portrait(backend, staff, kind, target_id, jpeg_with_gps(600, 400))
        assert r.status_code == 303, r.text
    config = retained_config(backend, world["tablet"], world["password"])
    cache = PhotoCache(tmp_path / "photos")
    assert cache.contact_portraits(config) == {} and cache.resident_portraits(config) == {}

    summary = cache.sync(
        config, server_url=backend.base_url, auth=(world["tablet"], world["password"])
    )
    assert summary.failed == [] and len(summary.downloaded) == 1  # one picture, twice used
    tiles, picker = cache.contact_portraits(config), cache.resident_portraits(config)
    assert list(tiles) == [world["julie"]] and list(picker) == [world["lea"]]
    sha = next(r for r in config["residents"] if r["id"] == world["lea"])["portrait"]["sha256"]
    assert hashlib.sha256(Path(picker[world["lea"]]).read_bytes()).hexdigest() == sha

    # A config without them (staff removed the contact, say): the files go from the tablet.
    for resident in config["residents"]:
        resident["portrait"] = None
        for contact in resident["contacts"]:
            contact["photo_url"] = contact["photo_sha256"] = None
    cache.sync(config, server_url=backend.base_url, auth=(world["tablet"], world["password"]))
    assert not cache.has(sha) and cache.contact_portraits(config) == {}


def test_the_core_gives_the_screens_the_cached_portraits_and_redraws_when_one_arrives(
    backend: RunningBackend, world: dict[str, Any], tmp_path: Path
) -> None:
    staff = log_in(backend, "aide@example.org")
    for kind, target_id in (("residents", world["marcel"]), ("contacts", world["julie"])):
        r = post_portrait(backend, staff, kind, target_id, jpeg_with_gps(500, 300, "olive"))
        assert r.status_code == 303, r.text
    config = retained_config(backend, world["tablet"], world["password"])
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    core = KioskCore(KioskSettings(data_dir=tmp_path), listener=events.put, media="synthetic")
    try:
        core._config = config
        assert core.photo_paths() == {} and core.resident_photo_paths() == {}
        summary = core.photos.sync(
            config, server_url=backend.base_url, auth=(world["tablet"], world["password"])
        )
        core._photos_synced(summary)
        emitted = [events.get(timeout=10), events.get(timeout=10)]
        assert [e["event"] for e in emitted] == ["photos", "config"]
        assert emitted[1]["config"] is config and emitted[1]["refresh"] == "portraits"
        assert list(core.photo_paths()) == [world["julie"]]
        assert list(core.resident_photo_paths()) == [world["marcel"]]
        # Nothing new the next time: no redraw.
        core._photos_synced(core.photos.sync(config, server_url=backend.base_url, auth=None))
        assert events.get(timeout=10)["event"] == "photos" and events.empty()
    finally:
        core.close()
