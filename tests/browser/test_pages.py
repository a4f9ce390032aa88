"""The web pages as a relative's or a staff member's browser shows them (real Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.screens import Screenshots
from tests.helpers import RunningBackend


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # A phone-sized window: that is how most relatives open their personal link.
    context = browser.new_context(viewport={"width": 412, "height": 860}, locale="fr-FR")
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def test_family_page_shows_the_approved_resident_in_french_then_english(
    backend: RunningBackend, page: Any, shots: Screenshots
) -> None:
    ids = backend.seed(residents=2, contacts=1)
    backend.approve(ids["residents"][0], ids["contacts"][0])
    url = f"{backend.base_url}/f/{ids['tokens'][0]}"

    response = page.goto(url)
    assert response.status == 200
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("h1").inner_text() == "Bonjour Julie"
    people = page.locator(".person").all_inner_texts()
    assert len(people) == 1 and "Marcel" in people[0]
    assert "Odette" not in page.content()  # not approved for this contact
    assert "Les Tilleuls" in page.locator(".lead").inner_text()
    shots(page, "family", full_page=True)

    response = page.goto(url + "?lang=en")
    assert response.status == 200
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Hello Julie"
    assert "Marcel" in page.locator(".person").inner_text()
    shots(page, "family-en", full_page=True)


def test_family_page_before_any_approval_says_so(backend: RunningBackend, page: Any) -> None:
    ids = backend.seed(residents=1, contacts=1)
    response = page.goto(f"{backend.base_url}/f/{ids['tokens'][0]}")
    assert response.status == 200
    assert "Marcel" not in page.content()
    assert "L'équipe ne vous a encore mis en lien" in page.locator("main").inner_text()


@pytest.mark.parametrize("query", ["", "?lang=en"])
def test_wrong_token_gives_a_404_with_a_sentence(
    backend: RunningBackend, page: Any, query: str
) -> None:
    backend.seed()
    response = page.goto(f"{backend.base_url}/f/not-a-real-token{query}")
    assert response.status == 404
    text = page.locator("body").inner_text()
    if query:
        assert "This link does not work" in page.locator("h1").inner_text()
        assert "Ask the home's staff for a new one" in text
    else:
        assert "Ce lien ne fonctionne pas" in page.locator("h1").inner_text()
        assert "Demandez-en un nouveau" in text
    for leak in ("Traceback", "Internal Server Error", "Exception", "sqlalchemy"):
        assert leak not in text


def test_home_page_lists_the_home(backend: RunningBackend, page: Any) -> None:
    backend.seed()
    response = page.goto(backend.base_url + "/")
    assert response.status == 200
    cards = page.locator(".card").all_inner_texts()
    assert len(cards) == 1
    assert "Les Tilleuls" in cards[0]
    assert "0 tablette en ligne" in cards[0]
    assert "en service" in page.locator("#broker-status").inner_text()
    page.goto(backend.base_url + "/?lang=en")
    assert "0 tablets online" in page.locator(".card").inner_text()
