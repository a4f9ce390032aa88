"""Translations of the web pages (gettext domain ``liens-web``), chosen per request.

Pages are French by default; ``?lang=en`` or a browser asking for English first switches them.
The .po catalogues are compiled with ``python -m backend.i18n`` (the kiosk's small compiler).
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from pathlib import Path

from kiosk.i18n import mo_bytes, parse_po

DOMAIN = "liens-web"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("fr", "en")
DEFAULT = "fr"


@lru_cache
def translations(language: str) -> gettext.NullTranslations:
    try:
        return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[language])
    except OSError:
        return gettext.NullTranslations()


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins, then the browser's first supported language, then French."""
    if query_lang in LANGUAGES:
        return str(query_lang)
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT


def compile_catalogues() -> list[Path]:
    written = []
    for po in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo = po.with_suffix(".mo")
        mo.write_bytes(mo_bytes(parse_po(po.read_text(encoding="utf-8"))))
        written.append(mo)
    translations.cache_clear()
    from backend.web import environment

    environment.cache_clear()
    return written


if __name__ == "__main__":
    for path in compile_catalogues():
        print(path)  # noqa: T201 - a developer tool's output
