"""Staff accounts against a real backend: login, lockout, rate limit, cookies, CSRF, sessions.

The dependencies the dashboard uses (``CurrentStaff``, ``AdminStaff``, ``CsrfChecked``,
``home_for``) are also driven through a small probe app sharing the same running backend.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from typing import Annotated, Any

import pytest
import requests
from argon2 import PasswordHasher
from fastapi import FastAPI, Form, Request
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.api.deps import SessionDep
from backend.auth import accounts, passwords, sessions
from backend.auth.deps import (
    AdminStaff,
    CsrfChecked,
    CurrentStaff,
    LoginRequired,
    accessible_home_ids,
    csrf_token_for,
    home_for,
)
from backend.auth.routes import login_required_handler
from backend.models import AuditEntry, Staff, StaffSession, utcnow
from backend.services import directory
from backend.services.errors import ServiceError
from tests.helpers import ROOT, RunningBackend

PASSWORD = "correct horse battery staple"
FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}


def add_staff(
    backend: RunningBackend,
    email: str = "ana@example.org",
    *,
    role: str = "staff",
    homes: list[str] | None = None,
) -> str:
    with backend.db.session() as s:
        return accounts.add_staff(
            session=s,
            email=email,
            name="Ana",
            password=PASSWORD,
            role=role,
            home_ids=homes,
            by="test",
        ).id


def login_form(http: requests.Session, backend: RunningBackend, next_path: str = "") -> str:
    """Open the login page; return the form's CSRF token (its cookie is now in ``http``)."""
    page = http.get(
        f"{backend.base_url}/staff/login", params={"next": next_path}, headers=FRENCH, timeout=10
    )
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def login(
    http: requests.Session,
    backend: RunningBackend,
    email: str = "ana@example.org",
    password: str = PASSWORD,
    next_path: str = "",
) -> requests.Response:
    token = login_form(http, backend, next_path)
    return http.post(
        f"{backend.base_url}/staff/login",
        data={"email": email, "password": password, "csrf_token": token, "next": next_path},
        headers=FRENCH,
        allow_redirects=False,
        timeout=10,
    )


def set_cookies(response: requests.Response) -> dict[str, str]:
    """Raw Set-Cookie headers by cookie name (requests would hide the attributes)."""
    return {
        header.split("=", 1)[0]: header for header in response.raw.headers.getlist("Set-Cookie")
    }


def session_row(backend: RunningBackend, token: str) -> StaffSession | None:
    with backend.db.session() as s:
        return s.get(StaffSession, sessions.token_hash(token))


def test_login_success_sets_a_server_side_session(backend: RunningBackend) -> None:
    staff_id = add_staff(backend)
    http = requests.Session()
    page = http.get(f"{backend.base_url}/staff/login", timeout=10)
    assert "Connexion du personnel" in page.text  # French by default
    assert 'autocomplete="current-password"' in page.text

    r = login(http, backend, email="  ANA@example.org ", next_path="/staff/homes")
    assert r.status_code == 303
    assert r.headers["location"] == "/staff/homes"
    token = http.cookies["liens_staff"]
    row = session_row(backend, token)
    assert row is not None and row.staff_id == staff_id
    assert token not in row.id  # only the hash is stored
    assert timedelta(hours=11) < row.expires_at - utcnow() <= timedelta(hours=12)
    with backend.db.session() as s:
        staff = s.get(Staff, staff_id)
        assert staff is not None and staff.last_login_at is not None
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target_id == staff_id))
        assert "staff.login" in list(actions)
    # Logged in, the login page sends the person on.
    again = http.get(f"{backend.base_url}/staff/login", allow_redirects=False, timeout=10)
    assert again.status_code == 303


def test_wrong_password_and_unknown_email_get_the_same_sentence(backend: RunningBackend) -> None:
    add_staff(backend)
    wrong = login(requests.Session(), backend, password="not the password")
    unknown = login(requests.Session(), backend, email="nobody@example.org")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "Adresse e-mail ou mot de passe incorrect." in r.text
        assert "liens_staff" not in set_cookies(r)
    # The email typed is given back, the password never.
    assert 'value="nobody@example.org"' in unknown.text
    assert "not the password" not in wrong.text


def test_open_redirects_are_dropped(backend: RunningBackend) -> None:
    add_staff(backend)
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/staff/login"):
        r = login(requests.Session(), backend, next_path=evil)
        assert r.status_code == 303
        assert r.headers["location"] == "/staff/", evil


def test_lockout_after_five_failures_for_an_account(backend: RunningBackend) -> None:
    staff_id = add_staff(backend)
    http = requests.Session()
    for _ in range(4):
        assert login(http, backend, password="wrong password!").status_code == 401
    fifth = login(http, backend, password="wrong password!")
    assert fifth.status_code == 429
    assert "Trop de tentatives : réessayez dans 15 minutes." in fifth.text
    # Locked: even the right password is refused, and says so the same way.
    right = login(http, backend)
    assert right.status_code == 429
    assert "Trop de tentatives : réessayez dans 15 minutes." in right.text
    with backend.db.session() as s:
        staff = s.get(Staff, staff_id)
        assert staff is not None and staff.locked_until is not None
        assert timedelta(minutes=14) < staff.locked_until - utcnow() <= timedelta(minutes=15)
        staff.locked_until = utcnow() - timedelta(seconds=1)  # fifteen minutes later
    assert login(http, backend).status_code == 303

    # An unknown email "locks" the same way: no way to tell which emails have an account.
    http = requests.Session()
    for _ in range(4):
        assert login(http, backend, email="ghost@example.org").status_code == 401
    assert login(http, backend, email="ghost@example.org").status_code == 429


def test_too_many_failures_from_one_address_get_429(backend: RunningBackend) -> None:
    add_staff(backend)
    http = requests.Session()
    for i in range(20):
        # Different unknown emails: the per-address limit, not an account's lock.
        assert login(http, backend, email=f"guess{i}@example.org").status_code == 401
    blocked = login(http, backend)
    assert blocked.status_code == 429
    assert "Trop de tentatives depuis cette connexion" in blocked.text


def test_cookie_flags_in_development_and_production(backend: RunningBackend) -> None:
    add_staff(backend)
    r = login(requests.Session(), backend)
    cookie = set_cookies(r)["liens_staff"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # development over plain http: a developer's laptop

    backend.settings.environment = "production"
    try:
        page = requests.get(f"{backend.base_url}/staff/login", timeout=10)
        assert "Secure" in set_cookies(page)["liens_login_csrf"]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        # A Secure cookie is not sent back over plain http: hand it over as a browser on https.
        r = requests.post(
            f"{backend.base_url}/staff/login",
            data={"email": "ana@example.org", "password": PASSWORD, "csrf_token": token.group(1)},
            cookies={"liens_login_csrf": token.group(1)},
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 303
        cookie = set_cookies(r)["liens_staff"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
    finally:
        backend.settings.environment = "development"


def test_login_form_needs_its_own_csrf_cookie(backend: RunningBackend) -> None:
    """Login CSRF: a page elsewhere cannot log a browser into an account of its choosing."""
    add_staff(backend)
    url = f"{backend.base_url}/staff/login"
    form = {"email": "ana@example.org", "password": PASSWORD}
    no_cookie = requests.post(url, data={**form, "csrf_token": "x" * 43}, timeout=10)
    assert no_cookie.status_code == 403
    http = requests.Session()
    login_form(http, backend)
    mismatch = http.post(url, data={**form, "csrf_token": "y" * 43}, timeout=10)
    assert mismatch.status_code == 403
    assert "liens_staff" not in http.cookies
    cookie = set_cookies(http.get(url, timeout=10))
    assert "HttpOnly" in cookie["liens_login_csrf"]


def test_csrf_missing_or_wrong_is_refused_and_logout_ends_the_session(
    backend: RunningBackend,
) -> None:
    add_staff(backend)
    http = requests.Session()
    assert login(http, backend).status_code == 303
    token = http.cookies["liens_staff"]
    row = session_row(backend, token)
    assert row is not None
    logout = f"{backend.base_url}/staff/logout"

    missing = http.post(logout, headers=FRENCH, allow_redirects=False, timeout=10)
    assert missing.status_code == 403
    assert "Rechargez la page" in missing.text or "Reload the page" in missing.text
    wrong = http.post(logout, data={"csrf_token": "forged"}, allow_redirects=False, timeout=10)
    assert wrong.status_code == 403
    assert session_row(backend, token) is not None

    ok = http.post(
        logout, headers={"X-CSRF-Token": row.csrf_token}, allow_redirects=False, timeout=10
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == "/staff/login"
    assert session_row(backend, token) is None
    # The old cookie, replayed, is worth nothing.
    replay = requests.post(
        logout,
        cookies={"liens_staff": token},
        data={"csrf_token": row.csrf_token},
        headers={"Accept": "text/html"},
        allow_redirects=False,
        timeout=10,
    )
    assert replay.status_code == 303
    assert replay.headers["location"].startswith("/staff/login")


def test_a_new_login_never_reuses_the_previous_session(backend: RunningBackend) -> None:
    add_staff(backend)
    http = requests.Session()
    login(http, backend)
    first = http.cookies["liens_staff"]
    http.cookies.set("liens_staff", first)
    # The login page redirects a logged-in browser; log in again by posting the form directly.
    token = re.search(
        r'name="csrf_token" value="([^"]+)"',
        requests.get(f"{backend.base_url}/staff/login", timeout=10).text,
    )
    assert token
    http.cookies.set("liens_login_csrf", token.group(1), path="/staff/login")
    r = http.post(
        f"{backend.base_url}/staff/login",
        data={"email": "ana@example.org", "password": PASSWORD, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 303
    assert session_row(backend, first) is None


def test_passwords_are_argon2id_and_rehashed_when_parameters_change(
    backend: RunningBackend,
) -> None:
    staff_id = add_staff(backend)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with backend.db.session() as s:
        staff = s.get(Staff, staff_id)
        assert staff is not None and staff.password_hash.startswith("$argon2id$")
        staff.password_hash = weak
    assert login(requests.Session(), backend).status_code == 303
    with backend.db.session() as s:
        staff = s.get(Staff, staff_id)
        assert staff is not None and staff.password_hash != weak
        assert not passwords.needs_rehash(staff.password_hash)
        assert passwords.verify_password(staff.password_hash, PASSWORD)


def test_pins() -> None:
    pin_hash = passwords.hash_pin("4821")
    assert pin_hash.startswith("$argon2id$")
    assert passwords.verify_pin(pin_hash, "4821")
    assert not passwords.verify_pin(pin_hash, "4822")
    assert not passwords.verify_pin(pin_hash, "")
    for bad in ("123", "1234567", "12a4", ""):
        with pytest.raises(ServiceError):
            passwords.hash_pin(bad)


# -- the dependencies, through a probe app over the same backend ------------------------------


def probe_app(backend: RunningBackend) -> FastAPI:
    app = FastAPI()
    app.state.backend = backend.backend
    app.add_exception_handler(LoginRequired, login_required_handler)

    @app.get("/staff/me")
    def me(request: Request, session: SessionDep, staff: CurrentStaff) -> dict[str, Any]:
        homes = accessible_home_ids(session, staff)
        return {
            "id": staff.id,
            "csrf": csrf_token_for(request),
            "homes": None if homes is None else sorted(homes),
        }

    @app.get("/staff/admin-only")
    def admin_only(staff: AdminStaff) -> dict[str, str]:
        return {"id": staff.id}

    @app.get("/staff/homes/{home_id}")
    def home(home_id: str, session: SessionDep, staff: CurrentStaff) -> dict[str, str]:
        return {"name": home_for(session, staff, home_id).name}

    @app.post("/staff/rename", dependencies=[CsrfChecked])
    def rename(name: Annotated[str, Form()]) -> dict[str, str]:
        return {"name": name}

    return app


def new_session(backend: RunningBackend, staff_id: str) -> tuple[str, str]:
    with backend.db.session() as s:
        staff = s.get(Staff, staff_id)
        assert staff is not None
        new = sessions.create_session(session=s, staff=staff)
        return new.token, new.row.csrf_token


def test_login_required_answers_html_json_and_htmx(backend: RunningBackend) -> None:
    client = TestClient(probe_app(backend), follow_redirects=False)
    html = client.get("/staff/me?tab=2", headers={"Accept": "text/html,*/*"})
    assert html.status_code == 303
    assert html.headers["location"] == "/staff/login?next=/staff/me%3Ftab%3D2"
    api = client.get("/staff/me", headers={"Accept": "application/json"})
    assert api.status_code == 401
    htmx = client.get(
        "/staff/me",
        headers={
            "Accept": "text/html",
            "HX-Request": "true",
            "HX-Current-URL": "http://testserver/staff/homes/x",
        },
    )
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"] == "/staff/login?next=/staff/homes/x"


def test_roles_and_homes(backend: RunningBackend) -> None:
    with backend.db.session() as s:
        a = directory.add_home(session=s, name="Les Tilleuls", by="test").id
        b = directory.add_home(session=s, name="La Roseraie", by="test").id
    staff_id = add_staff(backend, "aide@example.org", homes=[a])
    admin_id = add_staff(backend, "admin@example.org", role="admin")
    staff_token, staff_csrf = new_session(backend, staff_id)
    admin_token, _ = new_session(backend, admin_id)

    as_staff = TestClient(probe_app(backend), cookies={"liens_staff": staff_token})
    me = as_staff.get("/staff/me").json()
    assert me == {"id": staff_id, "csrf": staff_csrf, "homes": [a]}
    assert as_staff.get("/staff/admin-only").status_code == 403
    assert as_staff.get(f"/staff/homes/{a}").json() == {"name": "Les Tilleuls"}
    # Another home and a home that does not exist look exactly the same.
    other, missing = as_staff.get(f"/staff/homes/{b}"), as_staff.get("/staff/homes/nope")
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()

    as_admin = TestClient(probe_app(backend), cookies={"liens_staff": admin_token})
    assert as_admin.get("/staff/me").json()["homes"] is None
    assert as_admin.get("/staff/admin-only").status_code == 200
    assert as_admin.get(f"/staff/homes/{b}").json() == {"name": "La Roseraie"}

    # CSRF from a form field, and the route's own form fields still arrive.
    assert as_staff.post("/staff/rename", data={"name": "x"}).status_code == 403
    ok = as_staff.post("/staff/rename", data={"name": "Salon", "csrf_token": staff_csrf})
    assert ok.status_code == 200 and ok.json() == {"name": "Salon"}
    multipart = as_staff.post(
        "/staff/rename", data={"name": "Salon 2", "csrf_token": staff_csrf}, files={"f": b"1"}
    )
    assert multipart.json() == {"name": "Salon 2"}
    # Another session's token is no good.
    _, admin_csrf = new_session(backend, admin_id)
    assert (
        as_staff.post("/staff/rename", data={"name": "x", "csrf_token": admin_csrf}).status_code
        == 403
    )

    # Disabled: the open session stops working at once.
    with backend.db.session() as s:
        staff = s.get(Staff, staff_id)
        assert staff is not None
        accounts.disable(session=s, staff=staff, by="test")
    assert as_staff.get("/staff/me", headers={"Accept": "application/json"}).status_code == 401


def test_session_expiry_sliding_and_absolute(backend: RunningBackend) -> None:
    staff_id = add_staff(backend)
    token, _ = new_session(backend, staff_id)
    client = TestClient(probe_app(backend), cookies={"liens_staff": token})
    key = sessions.token_hash(token)

    # Sliding: a request after a while pushes the expiry 12 h ahead of now.
    with backend.db.session() as s:
        row = s.get(StaffSession, key)
        assert row is not None
        row.last_seen_at = utcnow() - timedelta(hours=3)
        row.expires_at = utcnow() + timedelta(hours=9)
    assert client.get("/staff/me").status_code == 200
    with backend.db.session() as s:
        row = s.get(StaffSession, key)
        assert row is not None
        assert row.expires_at - utcnow() > timedelta(hours=11, minutes=58)

    # Twelve idle hours: over.
    with backend.db.session() as s:
        row = s.get(StaffSession, key)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert client.get("/staff/me", headers={"Accept": "application/json"}).status_code == 401

    # Never more than seven days, however active.
    token, _ = new_session(backend, staff_id)
    with backend.db.session() as s:
        row = s.get(StaffSession, sessions.token_hash(token))
        assert row is not None
        row.created_at = utcnow() - timedelta(days=7, minutes=1)
        row.expires_at = utcnow() + timedelta(hours=6)
    client = TestClient(probe_app(backend), cookies={"liens_staff": token})
    assert client.get("/staff/me", headers={"Accept": "application/json"}).status_code == 401


def test_cli_creates_the_first_admin(backend: RunningBackend) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "liens",
            "admin",
            "staff",
            "add",
            "--email",
            "Direction@Example.org",
            "--name",
            "Direction",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=backend.env(),
        cwd=ROOT,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert '"role": "admin"' in run.stdout
    assert PASSWORD not in run.stdout
    assert login(requests.Session(), backend, email="direction@example.org").status_code == 303
