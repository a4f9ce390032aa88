"""Family photos against a real backend: upload checks, storage, moderation, the tablet's
configuration and download, hearts. See docs/photos.md."""

from __future__ import annotations

import hashlib
import html
import io
import json
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image
from sqlalchemy import func, select

from backend.models import AuditEntry, Photo, PhotoHeart, TabletEvent
from backend.photos import service as photo_service
from backend.photos.upload import read_upload
from backend.services import directory
from backend.services import tablets as tablet_service
from kiosk import protocol
from kiosk.protocol import Channel, Envelope, MessageType
from tests.helpers import RunningBackend
from tests.integration.test_authorization import add_staff, log_in

MB = 1024 * 1024


# -- images ----------------------------------------------------------------------------------------


def jpeg_with_gps(width: int = 640, height: int = 480, colour: str = "tomato") -> bytes:
    """A camera-like JPEG: EXIF with GPS position, camera make, and orientation 6 (turned)."""
    image = Image.new("RGB", (width, height), colour)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 12"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.6)  # Paris
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.2)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90, comment=b"secret comment")
    data = out.getvalue()
    assert b"PhoneMaker" in data and Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    return data


def png(width: int = 300, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (30, 120, 200, 128)).save(out, "PNG")
    return out.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny valid PNG whose header claims ``width`` × ``height`` pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


# -- the world -------------------------------------------------------------------------------------


def seed(b: RunningBackend) -> dict[str, Any]:
    """Marcel (senior) and Léa (youth) in one home with one tablet serving both; Julie is
    approved for both; another home has its own tablet."""
    with b.db.session() as s:
        home = directory.add_home(session=s, name="Les Tilleuls", by="test")
        marcel = directory.add_resident(session=s, home_id=home.id, first_name="Marcel", by="t")
        lea = directory.add_resident(
            session=s, home_id=home.id, first_name="Léa", kind="youth", by="t"
        )
        julie = directory.add_contact(session=s, home_id=home.id, display_name="Julie", by="t")
        for resident in (marcel, lea):
            directory.approve(session=s, resident_id=resident.id, contact_id=julie.id, by="t")
        tablet = tablet_service.add_tablet(session=s, home_id=home.id, name="Salon", by="t")
        other_home = directory.add_home(session=s, name="Maison Bleue", by="test")
        directory.add_resident(session=s, home_id=other_home.id, first_name="Bob", by="t")
        other = tablet_service.add_tablet(session=s, home_id=other_home.id, name="B", by="t")
        ids = {
            "home": home.id,
            "marcel": marcel.id,
            "lea": lea.id,
            "julie": julie.id,
            "token": julie.link_token,
            "tablet": tablet.id,
            "other_tablet": other.id,
        }
    ids["password"] = enrol(b, ids["tablet"])
    ids["other_password"] = enrol(b, ids["other_tablet"])
    b.backend.publish_configs([ids["tablet"], ids["other_tablet"]])
    return ids


def enrol(b: RunningBackend, tablet_id: str) -> str:
    """Enrol as a tablet does (the API creates its broker account); its broker password."""
    code = b.issue_code(tablet_id)
    answer = requests.post(f"{b.base_url}/api/v1/enrol", json={"code": code}, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["mqtt"]["password"])


@pytest.fixture
def world(backend: RunningBackend) -> dict[str, Any]:
    return seed(backend)


def upload(
    b: RunningBackend,
    token: str,
    files: list[tuple[str, bytes]],
    *,
    residents: list[str],
    captions: list[str] | None = None,
    lang: str = "fr",
) -> requests.Response:
    fields: list[tuple[str, Any]] = [("resident", (None, r)) for r in residents]
    fields += [("caption", (None, c)) for c in captions or []]
    fields += [("photo", (name, data, "image/jpeg")) for name, data in files]
    return requests.post(
        f"{b.base_url}/f/{token}/photos?lang={lang}",
        files=fields,
        headers={"Accept": "application/json"},
        timeout=30,
    )


def stored_files(b: RunningBackend) -> list[Path]:
    root = b.settings.photos_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def photo_rows(b: RunningBackend) -> int:
    with b.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Photo)) or 0)


def retained_config(b: RunningBackend, tablet_id: str, password: str) -> dict[str, Any]:
    """The tablet's retained configuration, read from the broker as the tablet itself."""
    got: list[dict[str, Any]] = []
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=tablet_id)
    client.username_pw_set(tablet_id, password)

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe(protocol.topic(tablet_id, Channel.CONFIG), qos=1)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        got.append(protocol.parse_envelope(bytes(message.payload)).data)
        ready.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", b.backend.mqtt_port)
    client.loop_start()
    try:
        assert ready.wait(10), "no retained configuration"
        return got[-1]
    finally:
        client.loop_stop()
        client.disconnect()


def photos_in(config: dict[str, Any], resident_id: str) -> list[dict[str, Any]]:
    resident = next(r for r in config["residents"] if r["id"] == resident_id)
    return list(resident["photos"])


def eventually(check: Callable[[], Any], timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
    return value


def sentence(r: requests.Response) -> str:
    return html.unescape(r.json()["detail"])


# -- a good photo ----------------------------------------------------------------------------------


def test_a_photo_is_re_encoded_without_any_metadata_and_reaches_the_tablet(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    r = upload(
        backend,
        world["token"],
        [("plage.jpg", jpeg_with_gps(4000, 3000))],
        residents=[world["marcel"]],
        captions=["À la plage, août 2026"],
    )
    assert r.status_code == 201, r.text
    [sent] = r.json()["photos"]
    assert sent["status"] == "approved"  # a senior, in a home that does not moderate them

    with backend.db.session() as s:
        photo = s.get(Photo, sent["id"])
        assert photo is not None
        sha, thumb_sha = photo.sha256, photo.thumb_sha256
        assert (photo.width, photo.height) == (1440, 1920)  # turned upright, at most 1920 px
    display = backend.settings.photos_dir / sha[:2] / f"{sha}.jpg"
    thumb = backend.settings.photos_dir / sha[:2] / f"{sha}.thumb.jpg"
    assert hashlib.sha256(display.read_bytes()).hexdigest() == sha
    assert hashlib.sha256(thumb.read_bytes()).hexdigest() == thumb_sha
    for path in (display, thumb):
        raw = path.read_bytes()
        with Image.open(path) as stored:
            assert stored.format == "JPEG"
            assert len(stored.getexif()) == 0
            assert not {"exif", "icc_profile", "xmp", "comment"} & set(stored.info)
            # Only the JFIF marker is left: no APP1 (EXIF/XMP), APP2 (ICC) or COM segment.
            assert [marker for marker, _ in stored.applist] == ["APP0"]
        for secret in (b"Exif", b"PhoneMaker", b"Phone 12", b"secret comment", b"http://ns.adobe"):
            assert secret not in raw
    assert max(Image.open(thumb).size) == 320
    assert [p.name for p in stored_files(backend)] == sorted([display.name, thumb.name])

    # In the tablet's retained configuration at once, with what the kiosk needs.
    config = retained_config(backend, world["tablet"], world["password"])
    [entry] = photos_in(config, world["marcel"])
    assert entry == {
        "id": sent["id"],
        "url": f"/api/v1/tablets/photos/{sent['id']}",
        "sha256": sha,
        "size": display.stat().st_size,
        "width": 1440,
        "height": 1920,
        "thumb_url": f"/api/v1/tablets/photos/{sent['id']}?size=thumb",
        "thumb_sha256": thumb_sha,
        "thumb_size": thumb.stat().st_size,
        "caption": "À la plage, août 2026",
        "from": "Julie",
        "from_contact_id": world["julie"],
        "added_at": entry["added_at"],
    }
    assert photos_in(config, world["lea"]) == []

    # The same photo again (a phone retrying): still one row, one set of files.
    again = upload(
        backend, world["token"], [("x.jpg", jpeg_with_gps(4000, 3000))], residents=[world["marcel"]]
    )
    assert again.status_code == 201 and again.json()["photos"][0]["id"] == sent["id"]
    assert photo_rows(backend) == 1 and len(stored_files(backend)) == 2


def test_png_and_webp_are_accepted_whatever_their_name(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    webp = io.BytesIO()
    Image.new("RGB", (200, 100), "navy").save(webp, "WEBP")
    r = upload(
        backend,
        world["token"],
        [("a.jpg", png()), ("b.txt", webp.getvalue())],
        residents=[world["marcel"]],
    )
    assert r.status_code == 201, r.text
    assert photo_rows(backend) == 2


# -- refused uploads: a sentence, nothing left behind ----------------------------------------------


def assert_nothing_kept(b: RunningBackend) -> None:
    assert photo_rows(b) == 0
    assert stored_files(b) == []


def test_a_text_file_renamed_jpg_is_refused_with_a_sentence(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    text = b"Bonjour Marcel, ceci n'est pas une photo.\n" * 50
    r = upload(backend, world["token"], [("photo.jpg", text)], residents=[world["marcel"]])
    assert r.status_code == 415
    assert sentence(r) == "Ce fichier n'est pas une photo."
    en = upload(
        backend, world["token"], [("photo.jpg", text)], residents=[world["marcel"]], lang="en"
    )
    assert sentence(en) == "This file is not a photo."
    assert_nothing_kept(backend)


def test_a_heic_photo_is_refused_with_what_to_do(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200
    r = upload(backend, world["token"], [("IMG_0001.HEIC", heic)], residents=[world["marcel"]])
    assert r.status_code == 415
    assert "HEIC" in sentence(r) and "JPEG" in sentence(r)
    assert_nothing_kept(backend)


def test_a_decompression_bomb_is_refused_before_decoding(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    bomb = png_bomb()
    assert len(bomb) < 2000
    r = upload(backend, world["token"], [("bomb.png", bomb)], residents=[world["marcel"]])
    assert r.status_code == 422
    assert sentence(r) == (
        "Cette photo est trop grande (900 mégapixels) ; la limite est 50 mégapixels."
    )
    # Just over the limit (not enough for Pillow's own guard): our check refuses it too.
    r = upload(
        backend, world["token"], [("big.png", png_bomb(10000, 5001))], residents=[world["marcel"]]
    )
    assert r.status_code == 422
    assert_nothing_kept(backend)


def test_a_damaged_photo_is_refused(backend: RunningBackend, world: dict[str, Any]) -> None:
    cut = jpeg_with_gps()[:600]
    r = upload(backend, world["token"], [("cut.jpg", cut)], residents=[world["marcel"]])
    assert r.status_code == 422
    assert sentence(r) == "Cette photo n'a pas pu être lue ; le fichier est peut-être abîmé."
    assert_nothing_kept(backend)


def test_a_50_mb_upload_is_refused_while_streaming(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    boundary = "liensboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="resident"\r\n\r\n'
        f"{world['marcel']}\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="photo"; filename="huge.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    chunk = b"\xff\xd8\xff" + b"\x00" * (MB - 3)

    def body() -> Iterator[bytes]:  # chunked: the server cannot know the size in advance
        yield head
        for _ in range(50):
            yield chunk
        yield tail

    r = requests.post(
        f"{backend.base_url}/f/{world['token']}/photos?lang=fr",
        data=body(),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
        },
        timeout=60,
    )
    assert r.status_code == 413
    assert sentence(r) == "Cette photo est trop grande (50 Mo) ; la limite est 15 Mo."
    assert_nothing_kept(backend)
    assert not any((backend.settings.photos_dir / "tmp").iterdir())


async def test_the_size_limit_holds_while_the_bytes_arrive(tmp_path: Path) -> None:
    """The reader itself: a 50 MB part is dropped once it passes 15 MB; the temporary file never
    grows past the limit and memory stays at a chunk or two, whatever comes after."""
    boundary = "b0undary"
    limit = 15 * MB
    made: list[Path] = []
    biggest_file = 0
    pulled = 0

    def new_temp_file() -> Path:
        path = tmp_path / f"part{len(made)}"
        path.touch()
        made.append(path)
        return path

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal biggest_file, pulled
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; '
            'filename="huge.jpg"\r\n\r\n'
        ).encode()
        block = b"\x00" * (64 * 1024)
        for _ in range(50 * 16):
            if made and made[0].exists():
                biggest_file = max(biggest_file, made[0].stat().st_size)
            pulled += len(block)
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    tracemalloc.start()
    try:
        form = await read_upload(
            chunks(),
            f"multipart/form-data; boundary={boundary}",
            new_temp_file=new_temp_file,
            max_file_bytes=limit,
            max_files=10,
            max_request_bytes=200 * MB,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [part] = form.files
    assert part.too_big and part.path is None and part.size == 50 * MB
    assert pulled == 50 * MB  # read to the end (so the browser gets the answer)...
    assert biggest_file <= limit  # ...but never more than the limit written...
    assert not made[0].exists()  # ...and nothing left once refused
    assert peak < 2 * MB, f"{peak} bytes held in memory"

    # Past max_request_bytes the reading stops altogether.
    made.clear()
    pulled = 0
    form = await read_upload(
        chunks(),
        f"multipart/form-data; boundary={boundary}",
        new_temp_file=new_temp_file,
        max_file_bytes=limit,
        max_files=10,
        max_request_bytes=20 * MB,
    )
    assert form.truncated and form.files[0].too_big
    assert pulled <= 20 * MB + 64 * 1024


def test_one_bad_file_in_a_batch_keeps_none_of_them(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    r = upload(
        backend,
        world["token"],
        [("ok.jpg", jpeg_with_gps()), ("notes.jpg", b"just text, honestly" * 20)],
        residents=[world["marcel"]],
    )
    assert r.status_code == 415
    assert r.json()["file"] == "notes.jpg"
    assert_nothing_kept(backend)


def test_a_failure_after_the_files_are_written_leaves_no_file_and_no_row(
    backend: RunningBackend, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(photo_service.tablet_service, "bump_revisions", broken)
    r = upload(backend, world["token"], [("ok.jpg", jpeg_with_gps())], residents=[world["marcel"]])
    assert r.status_code == 503
    assert sentence(r) == "Les photos n'ont pas pu être enregistrées. Réessayez dans un moment."
    assert_nothing_kept(backend)


def test_photos_go_only_to_the_relatives_own_residents(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    with backend.db.session() as s:
        stranger = directory.add_resident(
            session=s, home_id=world["home"], first_name="Henri", by="t"
        ).id
    r = upload(backend, world["token"], [("a.jpg", jpeg_with_gps())], residents=[stranger])
    assert r.status_code == 403
    assert sentence(r) == (
        "Vous ne pouvez envoyer des photos qu'aux personnes avec qui vous êtes en lien."
    )
    r = upload(backend, world["token"], [("a.jpg", jpeg_with_gps())], residents=[])
    assert r.status_code == 400  # two residents: the relative must choose
    r = upload(
        backend,
        world["token"],
        [("a.jpg", jpeg_with_gps())],
        residents=[world["marcel"]],
        captions=["x" * 201],
    )
    assert r.status_code == 400
    r = upload(backend, "not-a-token", [("a.jpg", jpeg_with_gps())], residents=[world["marcel"]])
    assert r.status_code == 404
    assert_nothing_kept(backend)


# -- moderation, download, hearts ------------------------------------------------------------------


def test_a_childs_photo_waits_for_staff_then_reaches_the_tablet(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    r = upload(
        backend,
        world["token"],
        [("anniv.jpg", jpeg_with_gps(colour="gold")), ("chat.jpg", jpeg_with_gps(colour="grey"))],
        residents=[world["lea"]],
        captions=["Ton anniversaire", "Le chat"],
    )
    assert r.status_code == 201, r.text
    first, second = (p["id"] for p in r.json()["photos"])
    assert [p["status"] for p in r.json()["photos"]] == ["pending", "pending"]
    assert (
        photos_in(retained_config(backend, world["tablet"], world["password"]), world["lea"]) == []
    )
    # Not downloadable while it waits.
    auth = (world["tablet"], world["password"])
    url = f"{backend.base_url}/api/v1/tablets/photos/{first}"
    assert requests.get(url, auth=auth, timeout=10).status_code == 404

    add_staff(backend, "aide@example.org", "staff", [world["home"]])
    staff = log_in(backend, "aide@example.org")
    queue = staff.http.get(f"{backend.base_url}/staff/photos", timeout=10)
    assert queue.status_code == 200 and "Ton anniversaire" in html.unescape(queue.text)
    overview = staff.http.get(f"{backend.base_url}/staff/", timeout=10)
    assert "2</span> photos à vérifier" in overview.text
    image = staff.http.get(f"{backend.base_url}/staff/photos/{first}/image", timeout=10)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"

    r = staff.http.post(
        f"{backend.base_url}/staff/photos/{first}/approve",
        data={"csrf_token": staff.csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 303
    r = staff.http.post(
        f"{backend.base_url}/staff/photos/{second}/refuse",
        data={"csrf_token": staff.csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 303

    config = eventually(
        lambda: (
            (c := retained_config(backend, world["tablet"], world["password"]))
            and photos_in(c, world["lea"])
            and c
        )
    )
    assert [p["caption"] for p in photos_in(config, world["lea"])] == ["Ton anniversaire"]
    assert requests.get(url, auth=auth, timeout=10).status_code == 200
    with backend.db.session() as s:
        refused = s.get(Photo, second)
        assert refused is not None and refused.status == "refused"
        refused_sha = refused.sha256
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "photo")))
        assert actions == {"photo.approve", "photo.refuse"}
    # The refused photo's files are gone; the relative sees the answer.
    assert not any(refused_sha in p.name for p in stored_files(backend))
    mine = requests.get(f"{backend.base_url}/f/{world['token']}/photos", timeout=10).json()
    assert {p["id"]: p["status"] for p in mine["photos"]} == {
        first: "approved",
        second: "refused",
    }
    # Deciding twice: the second answer says so, nothing changes.
    r = staff.http.post(
        f"{backend.base_url}/staff/photos/{first}/refuse",
        data={"csrf_token": staff.csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 303 and "notice=decided" in r.headers["location"]


def test_the_tablet_download_needs_its_own_credentials_and_resumes(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    r = upload(
        backend, world["token"], [("p.jpg", jpeg_with_gps(3000, 2000))], residents=[world["marcel"]]
    )
    photo_id = r.json()["photos"][0]["id"]
    entry = photos_in(
        retained_config(backend, world["tablet"], world["password"]), world["marcel"]
    )[0]
    url = backend.base_url + entry["url"]
    auth = (world["tablet"], world["password"])

    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, timeout=10).headers["www-authenticate"].startswith("Basic")
    assert requests.get(url, auth=(world["tablet"], "wrong"), timeout=10).status_code == 401
    other = (world["other_tablet"], world["other_password"])
    assert requests.get(url, auth=other, timeout=10).status_code == 404  # not one of its photos
    unknown = f"{backend.base_url}/api/v1/tablets/photos/nope"
    assert requests.get(unknown, auth=auth, timeout=10).status_code == 404

    full = requests.get(url, auth=auth, timeout=10)
    assert full.status_code == 200
    assert full.headers["etag"] == f'"{entry["sha256"]}"'
    assert full.headers["accept-ranges"] == "bytes"
    assert len(full.content) == entry["size"]
    assert hashlib.sha256(full.content).hexdigest() == entry["sha256"]

    # A broken download resumed where it stopped.
    part = requests.get(url, auth=auth, headers={"Range": "bytes=0-999"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 0-999/{entry['size']}"
    rest = requests.get(
        url,
        auth=auth,
        headers={"Range": "bytes=1000-", "If-Range": part.headers["etag"]},
        timeout=10,
    )
    assert rest.status_code == 206
    assert hashlib.sha256(part.content + rest.content).hexdigest() == entry["sha256"]
    # If-Range with another file's tag: the whole (new) file, not a piece of it.
    changed = requests.get(
        url, auth=auth, headers={"Range": "bytes=1000-", "If-Range": '"other"'}, timeout=10
    )
    assert changed.status_code == 200 and len(changed.content) == entry["size"]
    beyond = requests.get(url, auth=auth, headers={"Range": "bytes=999999999-"}, timeout=10)
    assert beyond.status_code == 416
    cached = requests.get(
        url, auth=auth, headers={"If-None-Match": full.headers["etag"]}, timeout=10
    )
    assert cached.status_code == 304

    thumb = requests.get(backend.base_url + entry["thumb_url"], auth=auth, timeout=10)
    assert thumb.status_code == 200
    assert hashlib.sha256(thumb.content).hexdigest() == entry["thumb_sha256"]

    # Revoked: the contact's photos leave the index and cannot be downloaded any more.
    with backend.db.session() as s:
        directory.revoke(
            session=s, resident_id=world["marcel"], contact_id=world["julie"], by="t", reason="t"
        )
        config = tablet_service.build_config(s, s.get(tablet_service.Tablet, world["tablet"]))
        assert photos_in(config, world["marcel"]) == []
    assert requests.get(url, auth=auth, timeout=10).status_code == 404
    # Retired: its credentials stop working.
    with backend.db.session() as s:
        tablet_service.retire(session=s, tablet_id=world["tablet"], by="t")
    assert photo_id and requests.get(url, auth=auth, timeout=10).status_code == 401


def test_a_heart_from_the_tablet_shows_on_the_relatives_page(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    r = upload(backend, world["token"], [("p.jpg", jpeg_with_gps())], residents=[world["marcel"]])
    photo_id = r.json()["photos"][0]["id"]
    heart = Envelope(
        type=MessageType.EVENT,
        data={"event": "photo_heart", "photo_id": photo_id, "resident_id": world["marcel"]},
    )
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=world["tablet"])
    client.username_pw_set(world["tablet"], world["password"])
    client.connect("127.0.0.1", backend.backend.mqtt_port)
    client.loop_start()
    try:
        events = protocol.topic(world["tablet"], Channel.EVENTS)
        for _ in range(2):  # the outbox may send it twice: one heart
            client.publish(events, heart.to_bytes(), qos=1).wait_for_publish(5)
        # A heart for a photo of another resident than the one named: dropped.
        wrong = Envelope(
            type=MessageType.EVENT,
            data={"event": "photo_heart", "photo_id": photo_id, "resident_id": world["lea"]},
        )
        client.publish(events, wrong.to_bytes(), qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()

    def stored() -> bool:
        with backend.db.session() as s:
            return s.get(TabletEvent, wrong.id) is not None

    eventually(stored)
    with backend.db.session() as s:
        hearts = list(s.scalars(select(PhotoHeart)))
        assert [(h.id, h.photo_id) for h in hearts] == [(heart.id, photo_id)]
    mine = requests.get(f"{backend.base_url}/f/{world['token']}/photos", timeout=10).json()
    assert mine["photos"][0]["liked_by"] == ["Marcel"]
    assert mine["photos"][0]["hearts"] == 1
    page = requests.get(f"{backend.base_url}/f/{world['token']}", timeout=10)
    strings = json.loads(
        html.unescape(page.text.split('id="photo-strings">')[1].split("</script>")[0])
    )
    assert strings["liked"].replace("{name}", "Marcel") == "Marcel a aimé votre photo ❤"
    # A relative sees only their own photos' thumbnails.
    thumb = f"{backend.base_url}/f/{world['token']}/photos/{photo_id}/thumb"
    assert requests.get(thumb, timeout=10).status_code == 200
    with backend.db.session() as s:
        someone = directory.add_contact(
            session=s, home_id=world["home"], display_name="Paul", by="t"
        ).link_token
    assert (
        requests.get(f"{backend.base_url}/f/{someone}/photos/{photo_id}/thumb", timeout=10)
    ).status_code == 404
