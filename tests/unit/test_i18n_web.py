"""The web pages' language choice: ``?lang=`` first, then the browser, then French."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from backend.i18n import pick_language, translations
from kiosk.i18n import parse_po


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        (None, None, "fr"),
        (None, "", "fr"),
        ("en", None, "en"),
        ("fr", "en-GB,en;q=0.9", "fr"),
        ("en", "fr-FR,fr;q=0.9", "en"),
        ("de", None, "fr"),  # unsupported ?lang= is ignored...
        ("de", "en-US,en;q=0.5", "en"),  # ...and the browser decides
        ("EN", None, "fr"),  # ?lang= is exact
        (None, "en-US,en;q=0.9,fr;q=0.8", "en"),
        (None, "EN-us", "en"),
        (None, "de-DE,de;q=0.9,en;q=0.8,fr;q=0.7", "en"),
        (None, "de-DE, fr-CH;q=0.8, en;q=0.7", "fr"),
        (None, "es,it", "fr"),
        (None, "*", "fr"),
        (None, ";;,,", "fr"),
    ],
)
def test_pick_language(query: str | None, accept: str | None, expected: str) -> None:
    assert pick_language(query, accept) == expected


def test_french_catalogue_is_compiled() -> None:
    fr = translations("fr")
    assert fr.gettext("Hello %(name)s") == "Bonjour %(name)s"
    assert fr.ngettext("%(num)d tablet online", "%(num)d tablets online", 0).startswith(
        "%(num)d tablette "
    )
    assert fr.ngettext("%(num)d tablet online", "%(num)d tablets online", 2).startswith(
        "%(num)d tablettes "
    )
    assert translations("en").gettext("Hello %(name)s") == "Hello %(name)s"


ROOT = Path(__file__).resolve().parents[2]
# _("..."), gettext("..."), t.gettext("..."), ngettext("...", "...") in templates and app.py.
MSGID_RE = re.compile(r"""(?:\b_|gettext)\(\s*("(?:[^"\\]|\\.)*"(?:\s*"(?:[^"\\]|\\.)*")*)""")


def _used_msgids() -> set[str]:
    sources = [*sorted((ROOT / "backend/templates").glob("*.html")), ROOT / "backend/app.py"]
    found: set[str] = set()
    for path in sources:
        for match in MSGID_RE.finditer(path.read_text(encoding="utf-8")):
            found.add("".join(ast.literal_eval(f"[{match.group(1).replace(chr(10), ',')}]")))
    return found


def test_every_web_msgid_is_translated_into_french() -> None:
    used = _used_msgids()
    assert "Hello %(name)s" in used
    assert "This link does not work" in used
    po = ROOT / "backend/locale/fr/LC_MESSAGES/liens-web.po"
    catalogue = parse_po(po.read_text(encoding="utf-8"))
    translated = {key.split("\0")[0] for key, value in catalogue.items() if value}
    assert sorted(used - translated) == []
