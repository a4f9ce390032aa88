"""The translation catalogues: every string the screens show has its French, .mo files are fresh.

No window needed: strings are extracted from the screens' and the core's Python (``_("...")``,
``ngettext("...", ...)``: its singular) and the screens' kv (``app.tr("...", ...)``) sources with
a regular expression.
"""

from __future__ import annotations

import re
from pathlib import Path

from kiosk import i18n

REPO = Path(__file__).resolve().parents[2]
MESSAGE_RE = re.compile(r"""(?:\b_|\btr|\bngettext)\(\s*((?:"[^"\\]*(?:\\.[^"\\]*)*"\s*)+)""")


def used_messages() -> set[str]:
    found: set[str] = set()
    sources = [*REPO.glob("screens/**/*.py"), *REPO.glob("screens/**/*.kv")]
    for path in [*sources, *REPO.glob("kiosk/**/*.py")]:
        for match in MESSAGE_RE.finditer(path.read_text(encoding="utf-8")):
            parts = re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1))
            found.add("".join(parts))
    return found


def catalogue(language: str) -> dict[str, str]:
    po = i18n.LOCALE_DIR / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    return i18n.parse_po(po.read_text(encoding="utf-8"))


def test_extraction_finds_the_screens_strings():
    messages = used_messages()
    assert "The tablet is looking for the network…" in messages
    assert "Erase" in messages
    assert "tomorrow at {time}" in messages  # kiosk/viewmodel.py
    assert len(messages) > 20


def test_french_catalogue_is_complete():
    french = catalogue("fr")
    missing = sorted(m for m in used_messages() if not french.get(m))
    assert missing == []


def test_english_catalogue_lists_every_string():
    english = catalogue("en")
    assert sorted(m for m in used_messages() if m not in english) == []


def test_compiled_catalogues_are_up_to_date():
    for language in i18n.SUPPORTED_LANGUAGES:
        po = i18n.LOCALE_DIR / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
        expected = i18n.mo_bytes(i18n.parse_po(po.read_text(encoding="utf-8")))
        assert po.with_suffix(".mo").read_bytes() == expected, "run: python -m kiosk.i18n"


def test_set_language_switches_and_falls_back_to_french():
    try:
        assert i18n.set_language("en_GB.UTF-8") == "en"
        assert i18n._("Erase") == "Erase"
        assert i18n.set_language("fr") == "fr"
        assert i18n._("Erase") == "Effacer"
        assert i18n.set_language("de") == "fr"
        assert i18n._("A string nobody translated") == "A string nobody translated"
    finally:
        i18n.set_language(i18n.DEFAULT_LANGUAGE)
