"""The tablet's photo cache against a small HTTP server that speaks like the backend's photo API.

``PhotoServer`` serves ``/api/v1/tablets/photos/{id}[?size=thumb]`` with HTTP Basic, ETag
``"<sha256>"``, ``Range`` and ``If-Range`` (docs/photos.md), and can cut a download short or
serve the wrong bytes. The UI tests use it too (``tests/ui/activities_driver.py``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from kiosk.photos import PhotoCache, PhotoSync, wanted_files

USER, PASSWORD = "tab-001", "s3cret"


def jpeg(colour: str, size: tuple[int, int] = (640, 480), text: str = "") -> bytes:
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.3, h * 0.2, w * 0.7, h * 0.8), fill="#F2D0B0", outline="#3A2A1A", width=6)
    draw.rectangle((0, h * 0.85, w, h), fill="#2F5D50")
    if text:
        draw.text((20, 20), text, fill="#FFFFFF")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


class PhotoServer:
    """``files`` maps a request path ("/api/v1/tablets/photos/p1?size=thumb") to its bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}  # path -> bytes sent before the connection drops
        self.wrong: set[str] = set()  # paths served with other bytes than announced
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, photo_id: str, display: bytes, thumb: bytes, **fields: Any) -> dict[str, Any]:
        """Serve a photo's two files; returns its entry for the config's ``photos``."""
        url = f"/api/v1/tablets/photos/{photo_id}"
        self.files[url] = display
        self.files[url + "?size=thumb"] = thumb
        return {
            "id": photo_id,
            "url": url,
            "sha256": hashlib.sha256(display).hexdigest(),
            "size": len(display),
            "width": 640,
            "height": 480,
            "thumb_url": url + "?size=thumb",
            "thumb_sha256": hashlib.sha256(thumb).hexdigest(),
            "thumb_size": len(thumb),
            "caption": "",
            "from": "Maman",
            "from_contact_id": "c1",
            "added_at": "2026-11-23T07:35:12+00:00",
            **fields,
        }

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path
        entry = {"path": path, "range": request.headers.get("Range"), "status": 0}
        self.requests.append(entry)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            entry["status"] = 401
            request.send_response(401)
            request.send_header("WWW-Authenticate", 'Basic realm="liens-tablet"')
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        body = self.files.get(path)
        if body is None:
            entry["status"] = 404
            request.send_response(404)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        etag = '"' + hashlib.sha256(body).hexdigest() + '"'
        if path in self.wrong:
            body = body[:-10] + b"0123456789"
        start = 0
        wanted = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if wanted and (if_range is None or if_range == etag):
            start = int(wanted.split("=", 1)[1].split("-", 1)[0])
            if start >= len(body):
                entry["status"] = 416
                request.send_response(416)
                request.send_header("Content-Range", f"bytes */{len(body)}")
                request.send_header("Content-Length", "0")
                request.end_headers()
                return
        part = body[start:]
        entry["status"] = 206 if start else 200
        request.send_response(entry["status"])
        request.send_header("Content-Type", "image/jpeg")
        request.send_header("ETag", etag)
        request.send_header("Accept-Ranges", "bytes")
        request.send_header("Content-Length", str(len(part)))
        if start:
            request.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        request.end_headers()
        cut = self.cut_after.pop(path, None)
        if cut is not None:
            request.wfile.write(part[:cut])
            request.wfile.flush()
            request.close_connection = True
            return
        request.wfile.write(part)

    def __enter__(self) -> PhotoServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def config_with(*photos: dict[str, Any], resident: str = "r1") -> dict[str, Any]:
    return {"residents": [{"id": resident, "first_name": "Jeanne", "photos": list(photos)}]}


@pytest.fixture
def server() -> Iterator[PhotoServer]:
    with PhotoServer() as running:
        yield running


def sync(cache: PhotoCache, server: PhotoServer, config: dict[str, Any]) -> Any:
    return cache.sync(config, server_url=server.url, auth=(USER, PASSWORD))


def test_downloads_display_and_thumbnail_checked_and_keyed_by_sha(
    server: PhotoServer, tmp_path: Path
) -> None:
    p1 = server.add("p1", jpeg("#8AB6D6"), jpeg("#8AB6D6", (160, 120)), caption="Ton anniversaire")
    # The same picture sent to a second resident: another id, the same files.
    p1_again = dict(p1, id="p1b")
    config = config_with(p1)
    config["residents"].append({"id": "r2", "photos": [p1_again]})
    cache = PhotoCache(tmp_path / "photos")
    summary = sync(cache, server, config)
    assert sorted(summary.downloaded) == sorted([p1["sha256"], p1["thumb_sha256"]])
    assert len(server.requests) == 2  # one file per sha, not per id
    assert cache.path(p1["sha256"]).read_bytes() == server.files[p1["url"]]
    assert not list((tmp_path / "photos").glob("*.part"))
    shown = cache.shown(config, "r1")
    assert [p["id"] for p in shown] == ["p1"]
    assert shown[0]["caption"] == "Ton anniversaire" and shown[0]["sender"] == "Maman"
    assert shown[0]["thumb"] == str(cache.path(p1["thumb_sha256"]))
    assert shown[0]["new"] and not shown[0]["hearted"]


def test_the_cache_survives_a_restart_without_downloading_again(
    server: PhotoServer, tmp_path: Path
) -> None:
    p1 = server.add("p1", jpeg("#E07A5F"), jpeg("#E07A5F", (160, 120)))
    config = config_with(p1)
    sync(PhotoCache(tmp_path / "photos"), server, config)
    PhotoCache(tmp_path / "photos").mark_seen("r1", "p1")
    server.requests.clear()
    again = PhotoCache(tmp_path / "photos")  # a new process, the same folder
    summary = sync(again, server, config)
    assert server.requests == [] and summary.present == 2
    assert again.shown(config, "r1")[0]["new"] is False


def test_a_broken_download_is_resumed_with_range_and_if_range(
    server: PhotoServer, tmp_path: Path
) -> None:
    display = jpeg("#81B29A", (1600, 1200))
    p1 = server.add("p1", display, jpeg("#81B29A", (160, 120)))
    server.cut_after[p1["url"]] = 5000
    cache = PhotoCache(tmp_path / "photos")
    first = sync(cache, server, config_with(p1))
    assert first.failed == [p1["sha256"]]
    part = cache.path(p1["sha256"]).with_name(p1["sha256"] + ".jpg.part")
    assert part.stat().st_size == 5000
    assert not cache.path(p1["sha256"]).exists()
    assert cache.shown(config_with(p1), "r1") == []  # nothing half-written is shown

    server.requests.clear()
    second = sync(PhotoCache(tmp_path / "photos"), server, config_with(p1))
    assert second.resumed == [p1["sha256"]]
    (resume,) = [r for r in server.requests if r["path"] == p1["url"]]
    assert resume["range"] == "bytes=5000-" and resume["status"] == 206
    assert cache.path(p1["sha256"]).read_bytes() == display
    assert not part.exists()


def test_a_part_of_another_file_is_replaced_when_if_range_does_not_match(
    server: PhotoServer, tmp_path: Path
) -> None:
    p1 = server.add("p1", jpeg("#3D405B"), jpeg("#3D405B", (160, 120)))
    cache = PhotoCache(tmp_path / "photos")
    (tmp_path / "photos").mkdir()
    part = cache.path(p1["sha256"]).with_name(p1["sha256"] + ".jpg.part")
    part.write_bytes(b"x" * 100)  # not a prefix of the file
    # The server answers 206 for a matching If-Range only; a wrong prefix fails its sha check
    # once, and the next pass starts from zero.
    first = sync(cache, server, config_with(p1))
    assert first.failed == [p1["sha256"]] and not part.exists()
    second = sync(cache, server, config_with(p1))
    assert second.downloaded == [p1["sha256"]]
    assert cache.has(p1["sha256"])


def test_a_sha_mismatch_is_discarded(server: PhotoServer, tmp_path: Path) -> None:
    p1 = server.add("p1", jpeg("#F2CC8F"), jpeg("#F2CC8F", (160, 120)))
    server.wrong.add(p1["url"])
    cache = PhotoCache(tmp_path / "photos")
    summary = sync(cache, server, config_with(p1))
    assert summary.failed == [p1["sha256"]]
    assert not cache.has(p1["sha256"])
    assert not list((tmp_path / "photos").glob(f"{p1['sha256']}*"))  # no part left either
    assert [p["id"] for p in cache.shown(config_with(p1), "r1")] == []


def test_a_photo_no_longer_listed_is_deleted(server: PhotoServer, tmp_path: Path) -> None:
    p1 = server.add("p1", jpeg("#8AB6D6"), jpeg("#8AB6D6", (160, 120)))
    p2 = server.add("p2", jpeg("#E07A5F"), jpeg("#E07A5F", (160, 120)))
    cache = PhotoCache(tmp_path / "photos")
    sync(cache, server, config_with(p1, p2))
    assert cache.has(p1["sha256"]) and cache.has(p2["sha256"])
    summary = sync(cache, server, config_with(p2))  # p1 refused later, or its sender revoked
    assert sorted(summary.deleted) == sorted([p1["sha256"], p1["thumb_sha256"]])
    assert not cache.has(p1["sha256"]) and not cache.has(p1["thumb_sha256"])
    assert cache.has(p2["sha256"])
    sync(cache, server, None)  # a retired tablet keeps nothing
    assert sorted(f.name for f in (tmp_path / "photos").iterdir()) == []


def test_wrong_credentials_download_nothing(server: PhotoServer, tmp_path: Path) -> None:
    p1 = server.add("p1", jpeg("#8AB6D6"), jpeg("#8AB6D6", (160, 120)))
    cache = PhotoCache(tmp_path / "photos")
    summary = cache.sync(config_with(p1), server_url=server.url, auth=(USER, "wrong"))
    assert len(summary.failed) == 2 and not cache.has(p1["sha256"])


def test_seen_and_hearted_are_kept_per_resident(tmp_path: Path) -> None:
    cache = PhotoCache(tmp_path / "photos")
    assert cache.mark_hearted("r1", "p1") is True
    assert cache.mark_hearted("r1", "p1") is False  # once per photo
    assert cache.mark_hearted("r2", "p1") is True
    cache.mark_seen("r1", "p1")
    state = PhotoCache(tmp_path / "photos")._state()
    assert state["seen"] == {"r1": ["p1"]}
    assert state["hearted"] == {"r1": ["p1"], "r2": ["p1"]}


def test_wanted_files_ignores_entries_without_a_valid_sha() -> None:
    config = config_with(
        {"id": "bad", "url": "/x", "sha256": "not-a-sha"},
        {"id": "ok", "url": "/y", "sha256": "a" * 64, "size": 3},
    )
    assert [(f.sha256, f.url, f.size) for f in wanted_files(config)] == [("a" * 64, "/y", 3)]


def test_photo_sync_runs_in_the_background_and_retries_after_a_failure(
    server: PhotoServer, tmp_path: Path
) -> None:
    p1 = server.add("p1", jpeg("#81B29A", (1200, 900)), jpeg("#81B29A", (160, 120)))
    server.cut_after[p1["url"]] = 3000
    done = threading.Event()
    summaries: list[Any] = []

    def on_done(summary: Any) -> None:
        summaries.append(summary)
        if not summary.failed:
            done.set()

    cache = PhotoCache(tmp_path / "photos")
    syncer = PhotoSync(cache, on_done=on_done, retry_seconds=0.2)
    syncer.request(config_with(p1), server_url=server.url, auth=(USER, PASSWORD))
    try:
        assert done.wait(10)
    finally:
        syncer.stop()
    assert summaries[0].failed and summaries[-1].resumed == [p1["sha256"]]
    assert cache.has(p1["sha256"])
