"""Spoken announcements: the tablet says who is calling ("Julie vous appelle"), for residents
staff chose on the staff screen (a resident who sees the screen poorly, or is across the room).

Offline and local, as everything on the tablet: the speech is synthesised by ``espeak-ng``
(Debian's package, installed by ``deploy/kiosk/install.sh``) into a small WAV file in the
kiosk's data folder, which the incoming call screen plays before its chime. Each sentence is
synthesised once and kept (a file named after a hash of the voice, the rate and the words); the
folder keeps at most :data:`MAX_FILES` of them. The words go to ``espeak-ng`` on its standard
input, never as an argument, so a name that begins with "-" is read, not taken for an option.

Nothing here needs Kivy; every failure (no ``espeak-ng``, a full disk) means silence and one
line in the log, never a failed call.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import wave
from pathlib import Path

log = logging.getLogger(__name__)

BINARY = "espeak-ng"
# espeak-ng's voices per language of the tablet (kiosk.i18n.SUPPORTED_LANGUAGES).
VOICES = {"fr": "fr", "en": "en-gb"}
DEFAULT_VOICE = VOICES["fr"]
# Words per minute: espeak-ng's default is 175; slower is easier to follow at 85 or with a
# hearing aid, and a name said once must be understood the first time.
RATE_WPM = 135
SYNTH_TIMEOUT_S = 10.0
MAX_FILES = 200  # a few per contact and language: the folder never grows without bound
FOLDER = "speech"


def voice_for(language: str | None) -> str:
    """The espeak-ng voice of ``language`` ("fr", "en"; anything else: French)."""
    code = (language or "").replace("-", "_").split("_", 1)[0].lower()
    return VOICES.get(code, DEFAULT_VOICE)


def wav_seconds(path: Path) -> float:
    """How long the WAV file at ``path`` plays (0.0 if it is not a readable WAV)."""
    try:
        with wave.open(str(path), "rb") as f:
            rate = f.getframerate()
            return f.getnframes() / rate if rate else 0.0
    except (OSError, EOFError, wave.Error):
        return 0.0


class Announcer:
    """Turns sentences into WAV files, once each, in ``cache_dir``."""

    def __init__(self, cache_dir: Path, *, binary: str = BINARY, rate_wpm: int = RATE_WPM) -> None:
        self.cache_dir = Path(cache_dir)
        self.binary = binary
        self.rate_wpm = rate_wpm
        self._lock = threading.Lock()
        self._warned = False

    def path_of(self, text: str, language: str | None) -> Path:
        """Where the WAV of ``text`` in ``language`` is (or will be) kept."""
        key = f"{voice_for(language)}|{self.rate_wpm}|{text}".encode()
        return self.cache_dir / f"{hashlib.sha256(key).hexdigest()[:24]}.wav"

    def speech(self, text: str, language: str | None) -> Path | None:
        """The WAV of ``text`` said in ``language``: from the cache, or synthesised now (a few
        tens of milliseconds). None when it cannot be made (no engine, no text, no room)."""
        text = " ".join(text.split())
        if not text:
            return None
        path = self.path_of(text, language)
        with self._lock:
            if wav_seconds(path) > 0:
                with contextlib.suppress(OSError):
                    os.utime(path)  # recently said: kept by _trim()
                return path
            try:
                return self._synthesise(text, voice_for(language), path)
            except (OSError, subprocess.SubprocessError) as exc:
                self._warn("could not synthesise a spoken announcement: %s", exc)
                return None

    def _synthesise(self, text: str, voice: str, path: Path) -> Path | None:
        binary = shutil.which(self.binary)
        if binary is None:
            self._warn("no %s on this tablet: calls are announced by the chime only", self.binary)
            return None
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(suffix=".tmp", dir=self.cache_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            done = subprocess.run(
                [binary, "-v", voice, "-s", str(self.rate_wpm), "-w", str(tmp), "--stdin"],
                input=text.encode("utf-8"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=SYNTH_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0 or wav_seconds(tmp) <= 0:
                err = done.stderr.decode("utf-8", "replace").strip()
                self._warn("%s failed (%s): %s", self.binary, done.returncode, err[:200])
                return None
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self._trim()
        return path

    def _trim(self) -> None:
        """Keep the :data:`MAX_FILES` most recent files (the oldest are names no longer said)."""
        try:
            files = sorted(self.cache_dir.glob("*.wav"), key=lambda p: p.stat().st_mtime)
        except OSError:
            return
        for old in files[: max(0, len(files) - MAX_FILES)]:
            old.unlink(missing_ok=True)

    def _warn(self, message: str, *args: object) -> None:
        # Once per process: a tablet without the engine rings many times a day.
        if not self._warned:
            self._warned = True
            log.warning(message, *args)


def announcer_for(data_dir: Path | None) -> Announcer:
    """The announcer keeping its files in ``data_dir``/speech (a temporary folder if None)."""
    base = Path(data_dir) if data_dir is not None else Path(tempfile.gettempdir()) / "liens"
    return Announcer(base / FOLDER)


def forget(data_dir: Path) -> None:
    """Delete the spoken sentences kept in ``data_dir`` (they hold the contacts' names): the
    tablet is enrolled again or retired."""
    shutil.rmtree(Path(data_dir) / FOLDER, ignore_errors=True)
