"""The staff dashboard against a real backend, a logged-in browser session (requests) and a real
headless kiosk: decisions reach the tablet's retained configuration at once."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import requests

from backend.auth import accounts
from backend.models import Approval, AuditEntry, ContactRequest
from backend.services import directory
from kiosk.store import Store
from tests.helpers import HeadlessKiosk, RunningBackend, contact_names

PASSWORD = "correct horse battery staple"


def add_staff(backend: RunningBackend, email: str, *, role: str = "staff", homes: list[str]) -> str:
    with backend.db.session() as s:
        return accounts.add_staff(
            session=s,
            email=email,
            name="Ana Martin",
            password=PASSWORD,
            role=role,
            home_ids=homes,
            by="test",
        ).id


def logged_in(backend: RunningBackend, email: str) -> tuple[requests.Session, str]:
    """A session logged in through the real login form, and its CSRF token for the dashboard."""
    http = requests.Session()
    form = http.get(f"{backend.base_url}/staff/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    done = http.post(
        f"{backend.base_url}/staff/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": token.group(1),
            "next": "/staff/",
        },
        timeout=10,
    )
    assert done.status_code == 200 and "/staff/" in done.url, done.text[:500]
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', done.text)
    assert csrf, done.text[:2000]
    return http, csrf.group(1)


POLICY_FORM: dict[str, Any] = {
    "window_count": "1",
    "w0_days": ["0", "1", "2", "3", "4", "5", "6"],
    "w0_start": "00:00",
    "w0_end": "23:59",
    "max_duration_min": "20",
    "calls_per_day": "4",
    "auto_answer": "on",
    "auto_answer_s": "10",
    "op": "save",
}


def tablet_contacts(kiosk_dir: Path) -> dict[str, dict[str, Any]]:
    """The contacts of the configuration the kiosk received and cached (its own store)."""
    store = Store(kiosk_dir / "kiosk.db")
    try:
        config = store.load_config() or {"residents": []}
    finally:
        store.close()
    return {c["display_name"]: c for r in config["residents"] for c in r["contacts"]}


def test_approve_with_a_policy_reaches_the_tablet_and_revoke_removes_it(
    backend: RunningBackend, tmp_path: Path
) -> None:
    ids = backend.seed(residents=1, contacts=1)
    add_staff(backend, "ana@example.org", homes=[ids["home"]])
    http, csrf = logged_in(backend, "ana@example.org")
    kiosk = HeadlessKiosk(
        tmp_path / "kiosk", backend.base_url, code=backend.issue_code(ids["tablet"])
    )
    try:
        kiosk.wait_for(lambda e: e["event"] == "config", timeout=20)
        page = http.get(f"{backend.base_url}/staff/homes/{ids['home']}", timeout=10)
        assert page.status_code == 200 and "Marcel" in page.text

        resident = ids["residents"][0]
        started = time.monotonic()
        answer = http.post(
            f"{backend.base_url}/staff/residents/{resident}/approvals/new",
            data={**POLICY_FORM, "contact_id": ids["contacts"][0], "csrf_token": csrf},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text[:2000]
        # The approval republishes the tablet's retained config at once: nothing else would
        # bring Julie to the tablet. The time is printed, not asserted: a 1.5 s bound on the
        # whole round trip is a bet on how busy a shared 2-core CI machine is.
        shown = kiosk.wait_for(
            lambda e: e["event"] == "config" and "Julie" in contact_names(e), timeout=20
        )
        print(f"dashboard approval -> tablet config: {time.monotonic() - started:.2f} s")  # noqa: T201
        assert shown["revision"] >= 2
        policy = tablet_contacts(tmp_path / "kiosk")["Julie"]["policy"]
        assert policy["auto_answer_s"] == 10 and policy["calls_per_day"] == 4
        assert policy["windows"] == [
            {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59"}
        ]
        # The home page sums it up in a line.
        page = http.get(f"{backend.base_url}/staff/homes/{ids['home']}?lang=en", timeout=10)
        assert "4 calls a day" in page.text and "answers by itself after 10 s" in page.text

        with backend.db.session() as s:
            approval = directory.find_approval(s, resident, ids["contacts"][0])
            assert approval is not None
            approval_id = approval.id
        revoked = http.post(
            f"{backend.base_url}/staff/approvals/{approval_id}",
            data={
                **POLICY_FORM,
                "status": "revoked",
                "reason": "Judge's order",
                "csrf_token": csrf,
            },
            timeout=10,
        )
        assert revoked.status_code == 200
        kiosk.wait_for(
            lambda e: e["event"] == "config" and "Julie" not in contact_names(e), timeout=20
        )
        with backend.db.session() as s:
            actions = [e.action for e in s.query(AuditEntry).order_by(AuditEntry.id)]
            row = s.get(Approval, approval_id)
            assert row is not None and row.status == "revoked" and row.reason == "Judge's order"
        assert "approval.approve" in actions and "approval.revoked" in actions
    finally:
        kiosk.stop()


def test_an_invalid_policy_is_refused_with_a_sentence_and_nothing_changes(
    backend: RunningBackend,
) -> None:
    ids = backend.seed()
    backend.approve(ids["residents"][0], ids["contacts"][0], {"calls_per_day": 2})
    add_staff(backend, "ana@example.org", homes=[ids["home"]])
    http, csrf = logged_in(backend, "ana@example.org")
    with backend.db.session() as s:
        approval = directory.find_approval(s, ids["residents"][0], ids["contacts"][0])
        assert approval is not None
        approval_id = approval.id
    bad = {
        **POLICY_FORM,
        "w0_days": [],  # a time slot without a day
        "calls_per_day": "many",
        "status": "approved",
        "csrf_token": csrf,
    }
    answer = http.post(
        f"{backend.base_url}/staff/approvals/{approval_id}?lang=en", data=bad, timeout=10
    )
    assert answer.status_code == 400
    assert "Tick at least one day for this time slot." in answer.text
    assert "The number of calls a day is a number from 1 to 50" in answer.text
    assert 'value="many"' in answer.text  # the form comes back as the person left it
    # Suspending needs a reason.
    answer = http.post(
        f"{backend.base_url}/staff/approvals/{approval_id}",
        data={**POLICY_FORM, "status": "suspended", "reason": "", "csrf_token": csrf},
        timeout=10,
    )
    assert answer.status_code == 400 and "Dites pourquoi" in answer.text
    with backend.db.session() as s:
        row = s.get(Approval, approval_id)
        assert row is not None and row.policy == {"calls_per_day": 2} and row.status == "approved"


def test_staff_of_another_home_get_404_and_no_csrf_gets_403(backend: RunningBackend) -> None:
    ids = backend.seed()
    backend.approve(ids["residents"][0], ids["contacts"][0])
    with backend.db.session() as s:
        other = directory.add_home(session=s, name="Les Mimosas", by="test").id
        approval = directory.find_approval(s, ids["residents"][0], ids["contacts"][0])
        assert approval is not None
        approval_id = approval.id
    add_staff(backend, "bob@example.org", homes=[other])
    http, csrf = logged_in(backend, "bob@example.org")
    base = backend.base_url
    for path in (
        f"/staff/homes/{ids['home']}",
        f"/staff/approvals/{approval_id}",
        f"/staff/residents/{ids['residents'][0]}/approvals/new",
    ):
        assert http.get(base + path, timeout=10).status_code == 404, path
    for path in (
        f"/staff/approvals/{approval_id}",
        f"/staff/contacts/{ids['contacts'][0]}/link/revoke",
        f"/staff/tablets/{ids['tablet']}/retire",
        f"/staff/tablets/{ids['tablet']}/code",
    ):
        answer = http.post(base + path, data={**POLICY_FORM, "csrf_token": csrf}, timeout=10)
        assert answer.status_code == 404, path
    # Their own home's page works; the audit log is for administrators.
    assert http.get(f"{base}/staff/homes/{other}", timeout=10).status_code == 200
    assert http.get(f"{base}/staff/audit", timeout=10).status_code == 403
    # Without the CSRF token nothing happens, even in one's own home.
    add_staff(backend, "ana@example.org", homes=[ids["home"]])
    ana, _csrf = logged_in(backend, "ana@example.org")
    answer = ana.post(f"{base}/staff/contacts/{ids['contacts'][0]}/link/revoke", timeout=10)
    assert answer.status_code == 403
    with backend.db.session() as s:
        assert s.get(Approval, approval_id) is not None
        assert directory.contact_by_token(s, ids["tokens"][0]) is not None


def test_queue_approve_and_refuse_with_htmx_and_the_audit_page(backend: RunningBackend) -> None:
    ids = backend.seed(residents=2, contacts=0)
    with backend.db.session() as s:
        home = directory.get_home(s, ids["home"])
        for name in ("Sophie", "Marc"):
            s.add(
                ContactRequest(
                    home_id=home.id,
                    source="relative",
                    requester_name=name,
                    resident_name_given="Marcel",
                    email=f"{name.lower()}@example.org",
                )
            )
    admin = add_staff(backend, "admin@example.org", role="admin", homes=[])
    http, csrf = logged_in(backend, "admin@example.org")
    base = backend.base_url
    queue = http.get(f"{base}/staff/requests", timeout=10)
    assert "Sophie" in queue.text and "Marc" in queue.text
    with backend.db.session() as s:
        requests_by_name = {r.requester_name: r.id for r in s.query(ContactRequest)}
    htmx = {"HX-Request": "true", "X-CSRF-Token": csrf}
    answer = http.post(
        f"{base}/staff/requests/{requests_by_name['Sophie']}/approve?lang=en",
        data={**POLICY_FORM, "resident_id": ids["residents"][0], "name": "Sophie"},
        headers=htmx,
        timeout=10,
    )
    assert answer.status_code == 200 and "Sophie can now be in touch with Marcel." in answer.text
    answer = http.post(
        f"{base}/staff/requests/{requests_by_name['Marc']}/refuse?lang=en",
        data={"note": ""},
        headers=htmx,
        timeout=10,
    )
    assert answer.status_code == 400 and "Write a short note" in answer.text
    answer = http.post(
        f"{base}/staff/requests/{requests_by_name['Marc']}/refuse",
        data={"note": "Not known to the family"},
        headers=htmx,
        timeout=10,
    )
    assert answer.status_code == 200
    with backend.db.session() as s:
        statuses = {r.requester_name: (r.status, r.decided_by) for r in s.query(ContactRequest)}
    assert statuses == {
        "Sophie": ("approved", f"staff:{admin}"),
        "Marc": ("refused", f"staff:{admin}"),
    }
    audit = http.get(f"{base}/staff/audit?action=request.refuse&lang=en", timeout=10)
    assert audit.status_code == 200 and "Not known to the family" in audit.text
    assert "Ana Martin (admin@example.org)" in audit.text and "Entries: 1" in audit.text
    # The log is read-only: no route edits or deletes an entry.
    assert http.post(f"{base}/staff/audit", headers=htmx, timeout=10).status_code == 405
