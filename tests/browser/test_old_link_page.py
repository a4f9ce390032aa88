"""A relative's page stays open while staff give them a new link (a phone lost, a link
forwarded): the old page is disconnected at once, says the link no longer works, stops trying to
reconnect, and the resident's call does not ring it.

Two real parties in Chromium (the staff member's dashboard, the relative's page) and the
tablet's MQTT side by hand (``FakeTablet``), through the real backend and its broker.
"""

from __future__ import annotations

import re
import time
from typing import Any

from backend.auth import accounts
from backend.services.directory import find_approval
from tests.helpers import RunningBackend
from tests.integration.test_signalling import FakeTablet

PASSWORD = "correct horse battery staple"
GONE = "Ce lien personnel n'est plus valable. Demandez-en un nouveau à l'équipe de l'établissement."


def test_a_regenerated_links_open_page_is_told_and_rings_no_more(
    backend: RunningBackend, browser: Any
) -> None:
    ids = backend.seed()
    marcel, julie = ids["residents"][0], ids["contacts"][0]
    backend.approve(marcel, julie)
    with backend.db.session() as s:
        accounts.add_staff(
            session=s,
            email="chef@example.org",
            name="Chef de service",
            password=PASSWORD,
            home_ids=[ids["home"]],
            by="test",
        )
        approval = find_approval(s, marcel, julie)
        assert approval is not None
        approval_id = approval.id
    tablet = FakeTablet(backend, ids["tablet"])
    relative = browser.new_context(viewport={"width": 412, "height": 860}, locale="fr-FR")
    staff = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
    try:
        page = relative.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(f"{backend.base_url}/f/{ids['tokens'][0]}")
        page.wait_for_function("() => !document.querySelector('.btn-call').disabled")

        desk = staff.new_page()
        desk.goto(f"{backend.base_url}/staff/login")
        desk.get_by_label("Adresse e-mail").fill("chef@example.org")
        desk.get_by_label("Mot de passe").fill(PASSWORD)
        desk.get_by_role("button", name="Se connecter").click()
        desk.wait_for_url(re.compile(r".*/staff/$"))
        desk.goto(f"{backend.base_url}/staff/homes/{ids['home']}")
        desk.on("dialog", lambda dialog: dialog.accept())  # "Make a new link for Julie?"
        started = time.monotonic()
        desk.locator(f"#contact-{julie}").get_by_role("button", name="Nouveau lien").click()
        # A deadline, not a measure (the 1 s is measured in tests/integration/test_decisions.py;
        # here the click, the confirmation and the form post are in the figure too).
        page.get_by_text(GONE).wait_for(timeout=5_000)
        took = time.monotonic() - started
        print(f"new link -> old page told: {took:.3f} s")  # noqa: T201 - the figure
        assert page.locator(".btn-call").is_disabled()
        opened = len(sockets)

        # The resident calls Julie: nothing rings on the old page; the tablet hears why.
        tablet.send(kind="invite", call_id="f" * 32, approval_id=approval_id)
        assert tablet.expect("hangup")["reason"] == "unavailable"
        time.sleep(3)  # a reconnection would come within the first backoff (about 1 s)
        assert page.locator("#call").is_hidden()
        assert len(sockets) == opened, f"the old page tried again: {sockets}"
        assert page.get_by_text(GONE).is_visible()
    finally:
        relative.close()
        staff.close()
        tablet.close()
