"""Staff revoke a pair from the dashboard while that pair is in a video call: the call ends on
the relative's browser, the tablet ends it too (reason "policy"), and the contact leaves the
tablet.

Issue 4 asks for the browser side within 2 s. The test prints the time and fails only past
``END_DEADLINE_S``: on a loaded 2-core machine a correct revocation was seen to take 4.4 s
(click, form post, database, MQTT, WebSocket, each waiting for a core), while a revocation that
did not reach the call would leave it connected until ICE consent expiry (about 30 s).

Three real parties: the staff member's Chromium page, the relative's Chromium page (fake camera)
and the headless kiosk core (synthetic media), through the backend and its broker.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from backend.auth import accounts
from backend.services.directory import find_approval
from tests.helpers import HeadlessKiosk, RunningBackend, contact_names

# A deadline, not a measure: on a loaded 2-core machine this test has taken about a minute,
# close to pytest-timeout's default 120 s.
pytestmark = pytest.mark.timeout(240)
PASSWORD = "correct horse battery staple"
END_DEADLINE_S = 10.0  # see the module's docstring
FRAMES_JS = """async () => {
  const pc = window.liensCall && window.liensCall.pc;
  if (!pc) return 0;
  let frames = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded || 0;
  });
  return frames;
}"""


def test_revoking_a_pair_during_a_call_ends_it_everywhere(
    backend: RunningBackend, browser: Any, tmp_path: Path
) -> None:
    ids = backend.seed(contacts=2)
    marcel, julie = ids["residents"][0], ids["contacts"][0]
    backend.approve(marcel, julie)
    with backend.db.session() as s:
        accounts.add_staff(
            session=s,
            email="chef@example.org",
            name="Chef de service",
            password=PASSWORD,
            role="staff",
            home_ids=[ids["home"]],
            by="test",
        )
        approval = find_approval(s, marcel, julie)
        assert approval is not None
        approval_id = approval.id
    kiosk = HeadlessKiosk(
        tmp_path / "kiosk",
        backend.base_url,
        code=backend.issue_code(ids["tablet"]),
        extra=["--media", "synthetic", "--answer", "auto"],
    )
    relative = browser.new_context(viewport={"width": 412, "height": 860}, locale="fr-FR")
    staff = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
    try:
        # The kiosk's first config: its process starting, enrolment, MQTT (a deadline).
        kiosk.wait_for(lambda e: e["event"] == "config" and contact_names(e) == ["Julie"], 60)

        # The staff member logs in and opens the pair's page.
        desk = staff.new_page()
        desk.goto(f"{backend.base_url}/staff/login")
        desk.get_by_label("Adresse e-mail").fill("chef@example.org")
        desk.get_by_label("Mot de passe").fill(PASSWORD)
        desk.get_by_role("button", name="Se connecter").click()
        desk.wait_for_url(re.compile(r".*/staff/$"))
        desk.goto(f"{backend.base_url}/staff/approvals/{approval_id}")

        # Julie calls Marcel; the tablet answers by itself; media flows.
        page = relative.new_page()
        page.goto(f"{backend.base_url}/f/{ids['tokens'][0]}")
        button = page.locator(f'[data-resident-id="{marcel}"] .btn-call')
        button.wait_for(state="visible", timeout=10_000)
        page.wait_for_function("() => !document.querySelector('.btn-call').disabled")
        button.click()
        kiosk.wait_for(lambda e: e["event"] == "call" and e["state"] == "connected", 20)
        page.wait_for_function(f"async () => (await ({FRAMES_JS})()) > 10", timeout=20_000)
        assert page.evaluate("() => window.liensCall.state") == "connected"

        # The judge's order arrives: the staff member revokes the pair.
        desk.locator('input[name="status"][value="revoked"]').check()
        desk.locator('textarea[name="reason"]').fill("Ordonnance du juge des enfants")
        started = time.monotonic()
        desk.get_by_role("button", name="Enregistrer").last.click()
        page.wait_for_function(
            "() => window.liensCall.state !== 'connected'",
            polling=20,
            timeout=END_DEADLINE_S * 1000,
        )
        took = time.monotonic() - started
        print(f"revocation -> relative call ended: {took:.3f} s")  # noqa: T201 - the figure
        ended = kiosk.wait_for(
            lambda e: e["event"] == "call" and e["state"] == "ended", END_DEADLINE_S
        )
        assert ended["reason"] == "policy"

        # The new configuration may arrive before or after the end of the call.
        def without_julie(e: dict[str, Any]) -> bool:
            return e["event"] == "config" and contact_names(e) == []

        if not any(without_julie(e) for e in kiosk.seen):
            kiosk.wait_for(without_julie, 15)
        # And Julie cannot call again.
        page.wait_for_function(
            "() => { const b = document.querySelector('.btn-call'); return !b || b.disabled ||"
            " b.hidden; }",
            timeout=10_000,
        )
    finally:
        relative.close()
        staff.close()
        kiosk.stop()
