"""A resident's export and erasure, and a child's PIN lock-out reset, through the dashboard.

A real backend (its own Mosquitto, SQLite), real photo and portrait files, a real headless kiosk.
Marcel Dupont has: Julie (his only), Thomas (also Odette's), calls, events, daily figures, a
request, photos (one only his, one also sent to Odette), hearts, a portrait, a tablet of his own.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from PIL import Image
from sqlalchemy import select, text

from backend.dashboard import portraits
from backend.models import (
    AuditEntry,
    Base,
    Call,
    Contact,
    ContactRequest,
    Photo,
    PhotoHeart,
    Resident,
    Tablet,
    TabletEvent,
    utcnow,
)
from backend.photos import service as photo_service
from backend.photos.processing import process
from backend.photos.storage import PhotoStore
from backend.services import directory, rollup
from backend.services import tablets as tablet_service
from tests.helpers import HeadlessKiosk, RunningBackend
from tests.integration.test_dashboard import add_staff, logged_in


def picture(backend: RunningBackend, name: str, color: tuple[int, int, int]) -> Path:
    path = backend.settings.photos_dir.parent / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), color).save(path)
    return path


def send_photo(
    backend: RunningBackend, token: str, residents: list[str], color: tuple[int, int, int]
) -> list[str]:
    processed = process(picture(backend, f"p{color}", color), max_pixels=10_000_000)
    saved = photo_service.save_photos(
        db=backend.db,
        store=PhotoStore(backend.settings.photos_dir),
        token=token,
        resident_ids=residents,
        photos=[(processed, "Au jardin")],
    )
    return [str(p["id"]) for p in saved.photos]


def set_portrait(
    backend: RunningBackend, model: Any, row_id: str, color: tuple[int, int, int]
) -> str:
    portrait = portraits.prepare(picture(backend, f"q{color}", color), max_pixels=10_000_000)
    portraits.portrait_store(backend.backend).put(portrait)
    with backend.db.session() as s:
        s.get(model, row_id).portrait_id = portrait.display.sha256
    return portrait.display.sha256


@pytest.fixture
def world(backend: RunningBackend) -> Iterator[dict[str, Any]]:
    b = backend
    ids = b.seed(residents=2, contacts=3)
    marcel, odette = ids["residents"]
    julie, thomas, claire = ids["contacts"]
    with b.db.session() as s:
        s.get(Resident, marcel).last_name = "Dupont"
        own = tablet_service.add_tablet(
            session=s, home_id=ids["home"], name="Chambre 12", resident_ids=[marcel],
            by="test",
        )  # fmt: skip
        own_id = own.id
    b.approve(marcel, julie)
    b.approve(marcel, thomas)
    b.approve(odette, thomas)
    only_marcel = send_photo(b, ids["tokens"][0], [marcel], (200, 30, 30))
    shared = send_photo(b, ids["tokens"][1], [marcel, odette], (30, 200, 30))
    marcel_portrait = set_portrait(b, Resident, marcel, (10, 10, 200))
    julie_portrait = set_portrait(b, Contact, julie, (10, 200, 200))
    with b.db.session() as s:
        approval = {a.contact_id: a.id for a in directory.active_approvals(s, marcel)}
        now = utcnow()
        s.add(Call(id="c-m1", direction="from_resident", resident_id=marcel, contact_id=julie,
                   approval_id=approval[julie], created_at=now, answer_at=now, end_at=now,
                   duration_s=120, outcome="completed"))  # fmt: skip
        s.add(Call(id="c-o1", direction="to_resident", resident_id=odette, contact_id=thomas,
                   approval_id="x", created_at=now, outcome="missed"))  # fmt: skip
        ts = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for n, rid in enumerate([marcel, marcel, odette]):
            s.add(TabletEvent(id=f"ev{n}", tablet_id=ids["tablet"], type="activity_started",
                              ts=ts, data={"event": "activity_started", "resident_id": rid,
                                           "activity": "photos"}))  # fmt: skip
        s.add(PhotoHeart(id="heart1", photo_id=only_marcel[0], resident_id=marcel,
                         tablet_id=ids["tablet"]))  # fmt: skip
        s.add(ContactRequest(home_id=ids["home"], resident_id=marcel, source="relative",
                             requester_name="Sophie", relation="nièce", email="sophie@example.org",
                             phone="0600000000", message="Bonjour"))  # fmt: skip
    with b.db.session() as s:
        from backend.models import Home

        home = s.get(Home, ids["home"])
        # The home's day, not UTC's: from 23:00 UTC (winter) Paris is already on the next day,
        # and rolling up the UTC date left today's events out (the test failed at that hour).
        today = rollup.local_day(utcnow(), ZoneInfo(home.timezone))
        rollup.roll_up(s, home, today)
    add_staff(b, "admin@example.org", role="admin", homes=[])
    add_staff(b, "aide@example.org", role="staff", homes=[ids["home"]])
    yield {
        **ids,
        "marcel": marcel,
        "odette": odette,
        "julie": julie,
        "thomas": thomas,
        "claire": claire,
        "own_tablet": own_id,
        "only_marcel": only_marcel,
        "shared": shared,
        "marcel_portrait": marcel_portrait,
        "julie_portrait": julie_portrait,
    }


def photo_sha(b: RunningBackend, photo_id: str) -> str:
    with b.db.session() as s:
        photo = s.get(Photo, photo_id)
        assert photo is not None
        return photo.sha256


def test_export_is_one_zip_with_everything_about_the_resident(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    b, w = backend, world
    http, csrf = logged_in(b, "admin@example.org")
    url = f"{b.base_url}/staff/residents/{w['marcel']}/export"
    assert http.post(url, timeout=10).status_code == 403  # no CSRF token
    answer = http.post(url, data={"csrf_token": csrf}, timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-type"] == "application/zip"
    assert 'filename="liens-marcel-dupont-' in answer.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    # The temporary file the ZIP was written to is gone once sent.
    deadline = time.monotonic() + 30
    while list((b.settings.data_dir / "tmp").glob("export-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list((b.settings.data_dir / "tmp").glob("export-*")) == []
    names = set(archive.namelist())
    photo_files = {f"photos/{w['only_marcel'][0]}.jpg", f"photos/{w['shared'][0]}.jpg"}
    assert names == {"donnees.json", "README.txt", "portrait.jpg", *photo_files}
    store = PhotoStore(b.settings.photos_dir)
    assert (
        archive.read(f"photos/{w['only_marcel'][0]}.jpg")
        == store.path(photo_sha(b, w["only_marcel"][0])).read_bytes()
    )
    readme = archive.read("README.txt").decode()
    assert "Marcel Dupont" in readme and "donnees.json" in readme and "jamais" in readme.lower()
    raw = archive.read("donnees.json").decode()
    data = json.loads(raw)
    assert data["resident"]["first_name"] == "Marcel" and data["resident"]["last_name"] == "Dupont"
    assert sorted(c["name"] for c in data["contacts"]) == ["Julie", "Thomas"]
    assert [c["id"] for c in data["calls"]] == ["c-m1"]
    assert data["calls"][0]["contact"] == "Julie" and data["calls"][0]["duration_s"] == 120
    assert [e["id"] for e in data["events"]] == ["ev0", "ev1"]
    assert len(data["usage_daily"]) == 1 and data["usage_daily"][0]["calls_made"] == 1
    assert data["usage_daily"][0]["activities"] == {"photos": 2}
    assert [r["requester_name"] for r in data["contact_requests"]] == ["Sophie"]
    assert {p["id"]: len(p["hearts"]) for p in data["photos"]} == {
        w["only_marcel"][0]: 1,
        w["shared"][0]: 0,
    }
    assert sorted(t["name"] for t in data["tablets"]) == ["Chambre 12", "Salon"]
    assert any(e["action"] == "approval.approve" or "approv" in e["action"] for e in data["audit"])
    # Secrets and other people's details stay out.
    for secret in [*w["tokens"], "sophie@example.org", "0600000000", "pin_hash"]:
        assert secret not in raw
    # Nothing of Odette.
    assert "ev2" not in raw and "c-o1" not in raw
    with b.db.session() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "resident.export"))
        assert entry is not None and entry.target_id == w["marcel"]


def test_erase_leaves_nothing_of_the_resident_and_tablets_drop_them(
    backend: RunningBackend, world: dict[str, Any], tmp_path: Path
) -> None:
    b, w = backend, world
    kiosk = HeadlessKiosk(tmp_path / "kiosk", b.base_url, code=b.issue_code(w["tablet"]))
    try:
        kiosk.wait_for(
            lambda e: e["event"] == "config" and sorted(e["residents"]) == ["Marcel", "Odette"],
            timeout=30,
        )
        http, csrf = logged_in(b, "admin@example.org")
        page = http.get(f"{b.base_url}/staff/residents/{w['marcel']}/erase", timeout=10)
        assert page.status_code == 200
        assert "Effacer Marcel Dupont et tout ce que Liens garde à son sujet" in page.text
        assert "Julie" in page.text and "Chambre 12" in page.text
        assert "Gardés, car liés à d'autres résidents : Thomas." in page.text
        url = f"{b.base_url}/staff/residents/{w['marcel']}/erase"
        refused = http.post(url, data={"csrf_token": csrf}, timeout=10)
        assert refused.status_code == 400 and "Cochez la case" in refused.text
        with b.db.session() as s:
            assert s.get(Resident, w["marcel"]) is not None
        done = http.post(url, data={"csrf_token": csrf, "confirm": "yes"}, timeout=30)
        assert done.status_code == 200, done.text[:500]
        assert f"/staff/homes/{w['home']}/erased?entry=" in done.url
        assert "Le résident a été effacé" in done.text and "1 appel retiré" in done.text
        # The shared tablet drops Marcel at once.
        kiosk.wait_for(
            lambda e: e["event"] == "config" and e["residents"] == ["Odette"], timeout=30
        )
    finally:
        kiosk.stop()

    rid = w["marcel"]
    with b.db.session() as s:
        # Every table with a resident_id column, and the events that name him in their data.
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if column.name == "resident_id":
                    left = s.execute(
                        text(f"SELECT count(*) FROM {table.name} WHERE resident_id = :r"),
                        {"r": rid},
                    ).scalar()
                    assert left == 0, table.name
        assert s.get(Resident, rid) is None
        events = s.scalars(select(TabletEvent)).all()
        assert "ev2" in {e.id for e in events}  # Odette's
        assert [e.id for e in events if rid in json.dumps(e.data)] == []
        assert [c.id for c in s.scalars(select(Call))] == ["c-o1"]
        assert s.scalars(select(PhotoHeart)).all() == []
        # Julie (his only) is gone; Thomas (Odette's too) and Claire (nobody's) stay.
        names = sorted(c.display_name for c in s.scalars(select(Contact)))
        assert names == ["Claire", "Thomas"]
        own = s.get(Tablet, w["own_tablet"])
        assert own is not None and own.retired_at is not None
        assert [p.resident_id for p in s.scalars(select(Photo))] == [w["odette"]]
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "resident.erase"))
        assert entry is not None and entry.target_id == rid
        assert entry.details["deleted"]["calls"] == 1 and entry.details["deleted"]["contacts"] == 1
        for row in s.scalars(select(AuditEntry)):
            blob = json.dumps(row.details, ensure_ascii=False) + row.target_id + row.actor
            assert "Marcel" not in blob and "Dupont" not in blob
    store, portrait_store = PhotoStore(b.settings.photos_dir), portraits.portrait_store(b.backend)
    with b.db.session() as s:
        shared_sha = s.scalars(select(Photo.sha256)).one()
    assert store.has(shared_sha)  # still Odette's
    leftovers = [p.name for p in b.settings.photos_dir.rglob("*.jpg") if "portraits" not in p.parts]
    assert sorted(leftovers) == sorted([f"{shared_sha}.jpg", f"{shared_sha}.thumb.jpg"])
    assert not portrait_store.path(w["marcel_portrait"]).exists()
    assert not portrait_store.path(w["julie_portrait"]).exists()


def test_only_administrators_export_or_erase_and_only_in_their_homes(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    b, w = backend, world
    http, csrf = logged_in(b, "aide@example.org")
    base = f"{b.base_url}/staff/residents/{w['marcel']}"
    assert http.post(f"{base}/export", data={"csrf_token": csrf}, timeout=10).status_code == 403
    assert http.get(f"{base}/erase", timeout=10).status_code == 403
    erase = http.post(f"{base}/erase", data={"csrf_token": csrf, "confirm": "yes"}, timeout=10)
    assert erase.status_code == 403
    # Their resident page shows no export or erase button, but says who can.
    page = http.get(base, timeout=10)
    if page.status_code == 200:  # the resident page belongs to the usage helper's work
        assert "Seuls les administrateurs" in page.text and 'data-testid="erase"' not in page.text
    # Staff of another home: 404, as if the resident did not exist.
    with b.db.session() as s:
        other = directory.add_home(session=s, name="Ailleurs", by="test")
        kid = directory.add_resident(
            session=s, home_id=other.id, first_name="Léa", kind="youth", by="test"
        )
        kid_id = kid.id
    reset = http.post(
        f"{b.base_url}/staff/residents/{kid_id}/reset-pin", data={"csrf_token": csrf}, timeout=10
    )
    assert reset.status_code == 404
    anonymous = requests.post(f"{base}/export", timeout=10, allow_redirects=False)
    assert anonymous.status_code in (303, 401, 403)
    with b.db.session() as s:
        assert s.get(Resident, w["marcel"]) is not None


def test_pin_reset_reaches_the_childs_tablet(backend: RunningBackend, tmp_path: Path) -> None:
    b = backend
    with b.db.session() as s:
        home = directory.add_home(session=s, name="Foyer Les Pins", by="test")
        lea = directory.add_resident(
            session=s, home_id=home.id, first_name="Léa", kind="youth", by="test"
        )
        senior = directory.add_resident(session=s, home_id=home.id, first_name="Jean", by="test")
        tablet = tablet_service.add_tablet(session=s, home_id=home.id, name="Salle", by="test")
        ids = {"home": home.id, "lea": lea.id, "senior": senior.id, "tablet": tablet.id}
    add_staff(b, "educ@example.org", role="staff", homes=[ids["home"]])
    kiosk = HeadlessKiosk(tmp_path / "kiosk", b.base_url, code=b.issue_code(ids["tablet"]))
    try:
        kiosk.wait_for(lambda e: e["event"] == "config", timeout=30)
        http, csrf = logged_in(b, "educ@example.org")
        page = http.get(f"{b.base_url}/staff/residents/{ids['lea']}", timeout=10)
        if page.status_code == 200:  # the resident page (usage helper) includes our partial
            assert "Réinitialiser le code PIN" in page.text
        url = f"{b.base_url}/staff/residents/{ids['lea']}/reset-pin"
        assert http.post(url, timeout=10).status_code == 403  # no CSRF token
        answer = http.post(
            url, data={"csrf_token": csrf}, headers={"HX-Request": "true"}, timeout=10
        )
        assert answer.status_code == 200
        assert "C'est fait : 1 tablette laisse Léa taper son code" in answer.text
        command = kiosk.wait_for(
            lambda e: e["event"] == "command" and e.get("command") == "reset_pin_lock", timeout=30
        )
        assert command["data"]["resident_id"] == ids["lea"]
        not_a_child = http.post(
            f"{b.base_url}/staff/residents/{ids['senior']}/reset-pin",
            data={"csrf_token": csrf},
            timeout=10,
        )
        assert not_a_child.status_code == 400
    finally:
        kiosk.stop()
    with b.db.session() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "resident.pin_lock_reset"))
        assert entry is not None and entry.details["tablets"] == [ids["tablet"]]


def test_cli_export_and_erase(
    backend: RunningBackend,
    world: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    """``liens admin resident export|erase``, in process, against the running backend."""
    from backend.settings import get_settings
    from liens.cli import main

    # The CLI reads its settings once per process: read them again here, and after the test.
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    b, w = backend, world
    for name, value in b.env().items():
        if name.startswith("LIENS_"):
            monkeypatch.setenv(name, value)

    def liens(*args: str) -> dict[str, Any]:
        code = main(["admin", "--by", "cli:test", *args])
        out = capsys.readouterr().out
        assert code in (0, 1), out
        answer: dict[str, Any] = json.loads(out)
        return answer

    out = tmp_path / "marcel.zip"
    exported = liens("resident", "export", "--resident", w["marcel"], "--out", str(out))
    assert "bytes" in exported, exported
    assert exported["bytes"] == out.stat().st_size
    assert "donnees.json" in zipfile.ZipFile(out).namelist()
    refused = liens("resident", "erase", "--resident", w["marcel"])
    assert refused == {"error": "Erasing cannot be undone: add --yes to confirm."}
    erased = liens("resident", "erase", "--resident", w["marcel"], "--yes")
    assert erased["deleted"]["calls"] == 1 and erased["retired_tablets"] == [w["own_tablet"]]
    assert erased["files_removed"] == 3  # his photo, his portrait, Julie's portrait
    with b.db.session() as s:
        assert s.get(Resident, w["marcel"]) is None
    assert liens("resident", "erase", "--resident", w["marcel"], "--yes") == {
        "error": f"Resident {w['marcel']} not found"
    }
