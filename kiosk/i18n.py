"""Translations of everything a person reads on the tablet (gettext, domain ``liens``).

Source strings are English; French is the default language and its catalogue is complete.
The module knows nothing of Kivy, so the core (notifications, logs meant for staff) can use it
too. The screens call ``_()`` through the app, which re-evaluates its texts when the language
changes.

Catalogues live in ``kiosk/locale/{lang}/LC_MESSAGES/liens.po`` and are compiled to ``.mo`` by
``python -m kiosk.i18n`` (a small compiler lives here, so no extra tool is needed).
"""

from __future__ import annotations

import ast
import gettext
import logging
import struct
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DOMAIN = "liens"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SUPPORTED_LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"

_lock = threading.Lock()
_language = DEFAULT_LANGUAGE
_translations: dict[str, gettext.NullTranslations] = {}


def _load(language: str) -> gettext.NullTranslations:
    cached = _translations.get(language)
    if cached is not None:
        return cached
    try:
        translation: gettext.NullTranslations = gettext.translation(
            DOMAIN, localedir=str(LOCALE_DIR), languages=[language]
        )
    except OSError:
        # English is the source language: a missing catalogue only loses nothing there.
        if language != "en":
            log.warning("no compiled catalogue for %r, showing source strings", language)
        translation = gettext.NullTranslations()
    _translations[language] = translation
    return translation


def normalise_language(language: str | None) -> str:
    """A supported language code for ``language`` ("fr_FR.UTF-8" -> "fr", unknown -> default)."""
    if not language:
        return DEFAULT_LANGUAGE
    code = language.replace("-", "_").split("_", 1)[0].split(".", 1)[0].lower()
    return code if code in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


def set_language(language: str | None) -> str:
    """Make ``language`` the language of every later ``_()``; returns the language in force."""
    global _language
    code = normalise_language(language)
    with _lock:
        _load(code)
        _language = code
    return code


def get_language() -> str:
    """The language ``_()`` translates to."""
    return _language


def _(message: str) -> str:
    """``message`` (English source) in the current language."""
    return _load(_language).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form of a message for ``n``, in the current language."""
    return _load(_language).ngettext(singular, plural, n)


def reset_cache() -> None:
    """Forget loaded catalogues (after recompiling them)."""
    with _lock:
        _translations.clear()


# --- catalogue tooling -------------------------------------------------------------------------


def parse_po(text: str) -> dict[str, str]:
    """The msgid -> msgstr pairs of a .po file (fuzzy entries and empty msgstr are kept as is).

    Handles what our catalogues use: comments, ``msgctxt``-free entries, multi-line strings and
    ``msgid_plural``/``msgstr[n]`` (stored NUL-joined, as in .mo files).
    """
    entries: dict[str, str] = {}
    msgid: list[str] = []
    msgid_plural: list[str] | None = None
    msgstr: dict[int, list[str]] = {}
    current: list[str] | None = None

    def flush() -> None:
        nonlocal msgid, msgid_plural, msgstr, current
        if current is not None:
            key = "".join(msgid)
            if msgid_plural is not None:
                key += "\0" + "".join(msgid_plural)
            values = ["".join(msgstr[i]) for i in sorted(msgstr)]
            entries[key] = "\0".join(values)
        msgid, msgid_plural, msgstr, current = [], None, {}, None

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid_plural "):
            msgid_plural = [ast.literal_eval(line[len("msgid_plural ") :])]
            current = msgid_plural
        elif line.startswith("msgid "):
            flush()
            msgid = [ast.literal_eval(line[len("msgid ") :])]
            current = msgid
        elif line.startswith("msgstr["):
            index = int(line[len("msgstr[") : line.index("]")])
            msgstr[index] = [ast.literal_eval(line[line.index("]") + 1 :].strip())]
            current = msgstr[index]
        elif line.startswith("msgstr "):
            msgstr[0] = [ast.literal_eval(line[len("msgstr ") :])]
            current = msgstr[0]
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
    flush()
    return entries


def mo_bytes(entries: dict[str, str]) -> bytes:
    """A GNU .mo file for ``entries`` (untranslated entries are left out, as msgfmt does)."""
    kept = {k: v for k, v in entries.items() if v and v.replace("\0", "")}
    keys = sorted(kept)
    ids = b""
    strs = b""
    offsets: list[tuple[int, int, int, int]] = []
    for key in keys:
        k, v = key.encode("utf-8"), kept[key].encode("utf-8")
        offsets.append((len(ids), len(k), len(strs), len(v)))
        ids += k + b"\0"
        strs += v + b"\0"
    header_size = 7 * 4
    ids_table = header_size
    strs_table = ids_table + len(keys) * 8
    ids_start = strs_table + len(keys) * 8
    strs_start = ids_start + len(ids)
    id_table = b"".join(struct.pack("<II", n, ids_start + o) for o, n, _, _ in offsets)
    str_table = b"".join(struct.pack("<II", n, strs_start + o) for _, _, o, n in offsets)
    header = struct.pack(
        "<IIIIIII", 0x950412DE, 0, len(keys), ids_table, strs_table, 0, strs_start + len(strs)
    )
    return header + id_table + str_table + ids + strs


def compile_catalogues(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Compile every ``liens.po`` under ``locale_dir`` to its ``.mo``; returns the .mo paths."""
    written: list[Path] = []
    for po in sorted(locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo = po.with_suffix(".mo")
        mo.write_bytes(mo_bytes(parse_po(po.read_text(encoding="utf-8"))))
        written.append(mo)
    reset_cache()
    return written


def main() -> int:
    """``python -m kiosk.i18n``: compile the catalogues."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for mo in compile_catalogues():
        log.info("compiled %s", mo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
