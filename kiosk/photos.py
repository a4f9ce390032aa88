"""The tablet's cache of family photos: downloads, checks, keeps what the config lists.

The config's residents each carry ``photos`` (docs/photos.md): the approved photos, newest
first, each with the ``url``/``sha256``/``size`` of its display version and the ``thumb_*`` of
its 320 px thumbnail. :class:`PhotoCache` keeps one file per SHA-256 under its folder
(``{sha}.jpg``), so the same picture sent to two residents is stored once and a file is only
ever the bytes its name says:

- a download goes to ``{sha}.jpg.part``; an interrupted one is resumed later with
  ``Range: bytes=<size of the part>-`` and ``If-Range: "<sha>"`` (a ``200`` answer means the
  server has another file: start over);
- the SHA-256 is checked before the atomic rename into place; a mismatch deletes the part;
- files (and parts) no longer listed by any resident are deleted after each config: a refused
  photo or a revoked contact leaves nothing on the tablet.

:class:`PhotoSync` runs the downloads in one background thread after each config (and after a
failure, again a minute later). Requests use HTTP Basic with the tablet's MQTT credentials.

Portraits (the staff's photo of a contact for the home tile, of a resident for the picker) are
cached the same way: a contact's ``photo_url``/``photo_sha256`` and a resident's ``portrait``
(``{url, sha256}``) are files the config lists like any photo; :meth:`PhotoCache.contact_portraits`
and :meth:`PhotoCache.resident_portraits` give the cached ones by id.

What each resident has looked at ("Nouveau") and sent a heart for is kept in ``state.json``
beside the files. No Kivy here: the slideshow and the memory game read :meth:`PhotoCache.shown`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3

from kiosk import tile_photos

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
TIMEOUT = (10.0, 30.0)  # connect, read (seconds)
RETRY_SECONDS = 60.0  # after a failed download, try again this much later
MAX_SEEN_PER_RESIDENT = 2000


@dataclass(frozen=True)
class PhotoFile:
    """One file the cache must hold: where to get it and what it must hash to."""

    sha256: str
    url: str
    size: int


@dataclass
class SyncSummary:
    """What one pass of :meth:`PhotoCache.sync` did (for logs and tests)."""

    downloaded: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    present: int = 0


class ShaMismatch(Exception):
    """The downloaded bytes do not hash to the sha256 the config announced."""


def _valid_sha(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value.lower())
    )


def resident_photos(config: dict[str, Any] | None, resident_id: str | None) -> list[dict[str, Any]]:
    """The ``photos`` entries of one resident (every resident's when ``resident_id`` is None)."""
    found: list[dict[str, Any]] = []
    for resident in (config or {}).get("residents", []) or []:
        if resident_id is not None and str(resident.get("id")) != resident_id:
            continue
        for photo in resident.get("photos", []) or []:
            if isinstance(photo, dict) and photo.get("id"):
                found.append(photo)
    return found


def _residents(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [r for r in (config or {}).get("residents", []) or [] if isinstance(r, dict)]


def contact_portrait_shas(config: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """Contact id -> (sha256, url) of its portrait, for the contacts that have one."""
    found: dict[str, tuple[str, str]] = {}
    for resident in _residents(config):
        for contact in resident.get("contacts", []) or []:
            if not isinstance(contact, dict) or not contact.get("id"):
                continue
            sha, url = contact.get("photo_sha256"), contact.get("photo_url")
            if _valid_sha(sha) and isinstance(url, str) and url:
                found[str(contact["id"])] = (str(sha).lower(), url)
    return found


def resident_portrait_shas(config: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """Resident id -> (sha256, url) of their portrait, for the residents that have one."""
    found: dict[str, tuple[str, str]] = {}
    for resident in _residents(config):
        portrait = resident.get("portrait")
        if not isinstance(portrait, dict) or not resident.get("id"):
            continue
        sha, url = portrait.get("sha256"), portrait.get("url")
        if _valid_sha(sha) and isinstance(url, str) and url:
            found[str(resident["id"])] = (str(sha).lower(), url)
    return found


def portrait_files(config: dict[str, Any] | None) -> list[PhotoFile]:
    """The portraits the config lists (residents', then contacts'), once each; size unknown."""
    files: dict[str, PhotoFile] = {}
    for listed in (resident_portrait_shas(config), contact_portrait_shas(config)):
        for sha, url in listed.values():
            files.setdefault(sha, PhotoFile(sha, url, -1))
    return list(files.values())


def wanted_files(config: dict[str, Any] | None) -> list[PhotoFile]:
    """Every file the config lists, once each: the portraits first (the tiles and the picker
    show them), then each photo's display file and thumbnail, newest photo first."""
    files: dict[str, PhotoFile] = {f.sha256: f for f in portrait_files(config)}
    for photo in resident_photos(config, None):
        for key in ("", "thumb_"):
            sha = photo.get(f"{key}sha256")
            url = photo.get(f"{key}url")
            if not _valid_sha(sha) or not isinstance(url, str) or not url:
                continue
            sha = str(sha).lower()
            if sha not in files:
                size = photo.get(f"{key}size")
                files[sha] = PhotoFile(sha, url, int(size) if isinstance(size, int) else -1)
    return list(files.values())


class PhotoCache:
    """Photo files by SHA-256 under ``folder``, and each resident's seen and hearted ids."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()  # guards state.json

    # --- files ---------------------------------------------------------------------------------

    def path(self, sha256: str) -> Path:
        return self.folder / f"{sha256.lower()}.jpg"

    def has(self, sha256: str) -> bool:
        return _valid_sha(sha256) and self.path(sha256).is_file()

    def sync(
        self,
        config: dict[str, Any] | None,
        *,
        server_url: str,
        auth: tuple[str, str] | None,
        session: requests.Session | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> SyncSummary:
        """Delete what ``config`` no longer lists, then download what is missing (blocking)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        files = wanted_files(config)
        summary = SyncSummary()
        summary.deleted = self.prune(f.sha256 for f in files)
        http = session or requests.Session()
        try:
            for photo_file in files:
                if should_stop():
                    break
                if self.path(photo_file.sha256).is_file():
                    summary.present += 1
                    continue
                try:
                    resumed = self.download(photo_file, server_url=server_url, auth=auth, http=http)
                except (
                    requests.RequestException,
                    urllib3.exceptions.HTTPError,
                    OSError,
                    ShaMismatch,
                ) as exc:
                    log.warning("photo %s not downloaded yet: %s", photo_file.sha256[:12], exc)
                    summary.failed.append(photo_file.sha256)
                    continue
                (summary.resumed if resumed else summary.downloaded).append(photo_file.sha256)
        finally:
            if session is None:
                http.close()
        return summary

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Delete every file and part whose sha is not in ``keep``; returns the deleted shas."""
        kept = {sha.lower() for sha in keep}
        deleted: list[str] = []
        if not self.folder.is_dir():
            return deleted
        for entry in self.folder.iterdir():
            name = entry.name
            sha = name.split(".", 1)[0]
            if not (name.endswith(".jpg") or name.endswith(".jpg.part")) or not _valid_sha(sha):
                continue  # state.json and anything that is not ours
            if sha not in kept:
                entry.unlink(missing_ok=True)
                if name.endswith(".jpg"):
                    deleted.append(sha)
        if deleted:
            tile_photos.drop_orphans(self.folder)
        return deleted

    def download(
        self,
        photo_file: PhotoFile,
        *,
        server_url: str,
        auth: tuple[str, str] | None,
        http: requests.Session,
    ) -> bool:
        """Fetch one file into place; returns True when an earlier part was resumed.

        Raises ``requests.RequestException``, ``urllib3.exceptions.HTTPError`` (a cut
        connection) or ``OSError`` (the part stays for next time) or
        :class:`ShaMismatch` (the part is gone; the next sync starts over).
        """
        final = self.path(photo_file.sha256)
        part = final.with_name(final.name + ".part")
        offset = part.stat().st_size if part.exists() else 0
        if photo_file.size >= 0 and offset >= photo_file.size > 0:
            # A complete (or too long) part that failed its check earlier: start over.
            part.unlink()
            offset = 0
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = f'"{photo_file.sha256}"'
        url = photo_file.url
        if not url.startswith(("http://", "https://")):
            url = server_url.rstrip("/") + "/" + url.lstrip("/")
        with http.get(url, headers=headers, auth=auth, stream=True, timeout=TIMEOUT) as response:
            if response.status_code == 416 and offset:
                part.unlink(missing_ok=True)  # the part is longer than the file: start over
                return self.download(photo_file, server_url=server_url, auth=auth, http=http)
            response.raise_for_status()
            resumed = response.status_code == 206 and offset > 0
            if response.status_code == 206 and not _range_starts_at(response, offset):
                raise requests.RequestException("unexpected Content-Range")
            mode = "ab" if resumed else "wb"
            with open(part, mode) as out:
                # read1, not iter_content: what arrived before a cut is written, not lost in a
                # buffer, so the next try resumes from there.
                while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        if _sha256_of(part) != photo_file.sha256:
            part.unlink(missing_ok=True)
            raise ShaMismatch(f"{photo_file.sha256[:12]}: the downloaded file does not match")
        os.replace(part, final)
        return resumed

    # --- what the screens show -----------------------------------------------------------------

    def contact_portraits(self, config: dict[str, Any] | None) -> dict[str, str]:
        """Contact id -> local file of its portrait, for those already on the tablet."""
        return self._cached(contact_portrait_shas(config))

    def resident_portraits(self, config: dict[str, Any] | None) -> dict[str, str]:
        """Resident id -> local file of their portrait, for those already on the tablet."""
        return self._cached(resident_portrait_shas(config))

    def _cached(self, listed: dict[str, tuple[str, str]]) -> dict[str, str]:
        return {key: str(self.path(sha)) for key, (sha, _url) in listed.items() if self.has(sha)}

    def shown(self, config: dict[str, Any] | None, resident_id: str) -> list[dict[str, Any]]:
        """The resident's photos that are on the tablet, newest first, as plain dicts.

        ``path`` (display file), ``thumb`` (thumbnail file or ""), ``caption``, ``sender``,
        ``new`` (not seen yet), ``hearted`` (a heart was sent), ``id``, ``added_at``.
        """
        state = self._state()
        seen = set(state.get("seen", {}).get(resident_id, []))
        hearted = set(state.get("hearted", {}).get(resident_id, []))
        photos: list[dict[str, Any]] = []
        for photo in resident_photos(config, resident_id):
            sha = str(photo.get("sha256") or "").lower()
            if not self.has(sha):
                continue
            thumb_sha = str(photo.get("thumb_sha256") or "").lower()
            photos.append(
                {
                    "id": str(photo["id"]),
                    "path": str(self.path(sha)),
                    "thumb": str(self.path(thumb_sha)) if self.has(thumb_sha) else "",
                    "caption": str(photo.get("caption") or ""),
                    "sender": str(photo.get("from") or ""),
                    "added_at": str(photo.get("added_at") or ""),
                    "new": str(photo["id"]) not in seen,
                    "hearted": str(photo["id"]) in hearted,
                }
            )
        photos.sort(key=lambda p: str(p["added_at"]), reverse=True)
        return photos

    def mark_seen(self, resident_id: str, photo_id: str) -> None:
        self._remember("seen", resident_id, photo_id)

    def mark_hearted(self, resident_id: str, photo_id: str) -> bool:
        """Remember a heart; False when this resident had already sent one for the photo."""
        return self._remember("hearted", resident_id, photo_id)

    def _remember(self, kind: str, resident_id: str, photo_id: str) -> bool:
        with self._lock:
            state = self._state()
            ids: list[str] = state.setdefault(kind, {}).setdefault(resident_id, [])
            if photo_id in ids:
                return False
            ids.append(photo_id)
            del ids[:-MAX_SEEN_PER_RESIDENT]
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / "state.json.tmp"
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.folder / "state.json")
            return True

    def _state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.folder / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}


def _range_starts_at(response: requests.Response, offset: int) -> bool:
    # "bytes 1000-4999/5000"
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-", 1)[0]) == offset
    except (IndexError, ValueError):
        return False


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


class PhotoSync:
    """Runs :meth:`PhotoCache.sync` in one background thread, on the latest config only.

    :meth:`request` never blocks: a config that arrives during a sync replaces any waiting one.
    After a pass with failures, another pass runs ``retry_seconds`` later. ``on_done`` is
    called from the worker thread with each pass's :class:`SyncSummary`.
    """

    def __init__(
        self,
        cache: PhotoCache,
        *,
        on_done: Callable[[SyncSummary], None] | None = None,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.cache = cache
        self.on_done = on_done
        self.retry_seconds = retry_seconds
        self._cond = threading.Condition()
        self._pending: tuple[dict[str, Any] | None, str, tuple[str, str] | None] | None = None
        self._last: tuple[dict[str, Any] | None, str, tuple[str, str] | None] | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None

    def request(
        self, config: dict[str, Any] | None, *, server_url: str, auth: tuple[str, str] | None
    ) -> None:
        with self._cond:
            if self._stopped:
                return
            self._pending = (config, server_url, auth)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="liens-photos", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._pending is None and self._last is not None and not self._stopped:
                    # Only here after a pass with failures: wait, then try the same again.
                    self._cond.wait(self.retry_seconds)
                    if self._pending is None:
                        self._pending = self._last
                if self._stopped or self._pending is None:
                    self._thread = None
                    return
                job, self._pending = self._pending, None
            config, server_url, auth = job
            try:
                summary = self.cache.sync(
                    config, server_url=server_url, auth=auth, should_stop=lambda: self._stopped
                )
            except Exception:
                log.exception("photo sync failed")
                summary = SyncSummary(failed=["?"])
            with self._cond:
                self._last = job if summary.failed else None
            if summary.downloaded or summary.resumed or summary.deleted or summary.failed:
                log.info(
                    "photos: %d downloaded, %d resumed, %d deleted, %d failed, %d already there",
                    len(summary.downloaded),
                    len(summary.resumed),
                    len(summary.deleted),
                    len(summary.failed),
                    summary.present,
                )
            if self.on_done is not None:
                try:
                    self.on_done(summary)
                except Exception:
                    log.exception("photo sync listener failed")
