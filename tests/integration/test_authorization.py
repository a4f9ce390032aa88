"""Who may reach what, for every route of the app, generated from the route table.

Two homes, A and B, each with residents, contacts, approvals, a tablet, a request and a call;
``staff_a`` works in A, ``admin`` runs the organisation. Every HTTP route is requested with B's
ids in its path parameters (by name, see ``FILL``) and must answer:

- anonymous: 303 to the login page, 401, 403 or 404, unless the route is on ``PUBLIC``;
- staff_a: 403 or 404 when the path names B's objects (with a valid CSRF token, so that CSRF is
  not what stops it); otherwise no 5xx and nothing of B in the page;
- admin: anything but 403/404 (and no 5xx); state-changing requests run on a fresh home each;
- every state-changing ``/staff/`` route refuses a missing or wrong CSRF token with 403.

A new route is covered without writing a test. A path parameter whose name is not in ``FILL``
fails the test: declare there how to fill it. A relative's personal link, page and WebSocket
``hello``, shows only that relative's approved residents.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from PIL import Image
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from backend.app import create_app
from backend.auth import accounts, sessions
from backend.dashboard import portraits
from backend.models import Call, Contact, ContactRequest, Resident, StaffSession, new_id, utcnow
from backend.photos import service as photo_service
from backend.photos.processing import process
from backend.photos.storage import PhotoStore
from backend.services import directory, staff_actions
from backend.services import tablets as tablet_service
from tests.helpers import RunningBackend

# Routes anyone may reach (regular expressions over the route's path template).
PUBLIC = [
    r"/",
    r"/healthz",
    r"/staff/login",
    r"/f/\{token\}(/.*)?",
    r"/h/\{slug\}(/.*)?",
    r"/api/v1/enrol",
    r"/api/docs(/.*)?",
    r"/api/openapi\.json",
    r"/docs/oauth2-redirect",
    r"/redoc",
    r"/confidentialite",
]
MOUNTS = {"/static"}
# Routes for tablets only (HTTP Basic with a tablet's own credentials): no browser gets through,
# anonymous, staff or administrator; the tablets' own access is tested in test_photos.py.
TABLET_ONLY = [r"/api/v1/tablets/.*"]

# Path parameter name -> what of the target home it names. Add a line for a new parameter.
FILL = {
    "home_id": "home",
    "resident_id": "resident",
    "contact_id": "contact",
    "approval_id": "approval",
    "tablet_id": "tablet",
    "request_id": "request",
    "call_id": "call",
    "staff_id": "staff",
    "token": "token",
    "slug": "slug",
    "photo_id": "photo",
    "portrait_id": "portrait",
}

# Routes where an administrator may get 404 for an object that exists (never 403), and why.
ADMIN_MAY_404 = {
    "/staff/calls/{call_id}/end": "only a call under way can be ended; the seeded call is over",
}
# Routes that end the session they are called with: requested with a session of their own.
SESSION_ENDING = {"/staff/logout"}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")
PASSWORD = "correct horse battery staple"


# -- the route table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    path: str
    method: str
    route: BaseRoute

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    @property
    def public(self) -> bool:
        return any(re.fullmatch(pattern, self.path) for pattern in PUBLIC)

    @property
    def tablet_only(self) -> bool:
        return any(re.fullmatch(pattern, self.path) for pattern in TABLET_ONLY)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def flat_routes(app: FastAPI) -> Iterator[tuple[str, BaseRoute]]:
    """(full path, route) for every route, included routers flattened."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI's lazily included routers
    except ImportError:  # older FastAPI: app.routes is already flat
        for route in app.routes:
            yield getattr(route, "path", ""), route
        return
    for context in iter_route_contexts(app.routes):
        yield context.path or "", context.original_route


def route_table(app: FastAPI) -> tuple[list[Endpoint], list[str], list[str]]:
    """(HTTP endpoints, WebSocket paths, mount paths)."""
    endpoints, sockets, mounts = [], [], []
    for path, route in flat_routes(app):
        if isinstance(route, Mount):
            mounts.append(path)
        elif isinstance(route, APIWebSocketRoute | WebSocketRoute):
            sockets.append(path)
        elif isinstance(route, APIRoute | Route):
            for method in sorted(route.methods or []):
                if method not in ("HEAD", "OPTIONS"):
                    endpoints.append(Endpoint(path, method, route))
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r} at {path!r}")
    return endpoints, sockets, mounts


def fill_path(path: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        return values[FILL[match.group(1)]]

    return PARAM.sub(one, path)


# -- two homes ------------------------------------------------------------------------------------

_counter = itertools.count()


def seed_home(
    backend: RunningBackend, *, home: str, people: list[str], with_staff: bool = True
) -> dict[str, Any]:
    """A home with two residents, two contacts (the first approved for the first resident only,
    revoked for the second), a tablet, a pending request, an ended call, and its own staff."""
    with backend.db.session() as s:
        h = directory.add_home(session=s, name=home, by="test")
        r1, r2 = (
            directory.add_resident(session=s, home_id=h.id, first_name=n, by="test")
            for n in people[:2]
        )
        c1, c2 = (
            directory.add_contact(session=s, home_id=h.id, display_name=n, by="test")
            for n in people[2:4]
        )
        a1 = directory.approve(session=s, resident_id=r1.id, contact_id=c1.id, by="test")
        directory.approve(session=s, resident_id=r2.id, contact_id=c2.id, by="test")
        directory.approve(session=s, resident_id=r2.id, contact_id=c1.id, by="test")
        directory.revoke(session=s, resident_id=r2.id, contact_id=c1.id, by="test", reason="t")
        tablet = tablet_service.add_tablet(session=s, home_id=h.id, name=f"Tab {home}", by="test")
        request = ContactRequest(
            home_id=h.id,
            resident_id=r1.id,
            source="tablet",
            requester_name=people[4],
            relation="tante",
        )
        s.add(request)
        call = Call(
            id=new_id(),
            direction="to_resident",
            resident_id=r1.id,
            contact_id=c1.id,
            approval_id=a1.id,
            tablet_id=tablet.id,
            ring_at=utcnow(),
            end_at=utcnow(),
            outcome="missed",
            ended_by="timeout",
        )
        s.add(call)
        staff_id = ""
        if with_staff:
            staff_id = accounts.add_staff(
                session=s,
                email=f"staff{next(_counter)}@{h.id}.example.org",
                name=f"Staff of {home}",
                password=PASSWORD,
                home_ids=[h.id],
                by="test",
            ).id
        s.flush()
        # A photo from the first contact, waiting for the staff (the home moderates seniors').
        h.moderate_senior_photos = True
        token, resident_id = c1.link_token, r1.id
    photo_id = seed_photo(backend, token, resident_id)
    portrait = seed_portraits(backend, r1.id, c1.id)
    return {
        "photo": photo_id,
        "portrait": portrait,
        "home": h.id,
        "slug": h.slug or "",
        "resident": r1.id,
        "resident2": r2.id,
        "contact": c1.id,
        "token": c1.link_token,
        "token2": c2.link_token,
        "approval": a1.id,
        "tablet": tablet.id,
        "request": request.id,
        "call": call.id,
        "staff": staff_id,
        "names": [home, *people],
    }


def seed_photo(backend: RunningBackend, token: str, resident_id: str) -> str:
    path = backend.settings.photos_dir.parent / f"seed-{next(_counter)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (next(_counter) % 256, 90, 160)).save(path)
    processed = process(path, max_pixels=backend.settings.photo_max_pixels)
    path.unlink()
    saved = photo_service.save_photos(
        db=backend.db,
        store=PhotoStore(backend.settings.photos_dir),
        token=token,
        resident_ids=[resident_id],
        photos=[(processed, "")],
    )
    return str(saved.photos[0]["id"])


def seed_portraits(backend: RunningBackend, resident_id: str, contact_id: str) -> str:
    """The same portrait for the resident and the contact (the dashboard shows it)."""
    path = backend.settings.photos_dir.parent / f"seed-{next(_counter)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), (next(_counter) % 256, 160, 90)).save(path)
    portrait = portraits.prepare(path, max_pixels=backend.settings.photo_max_pixels)
    path.unlink()
    portraits.portrait_store(backend.backend).put(portrait)
    with backend.db.session() as s:
        for target in (s.get(Resident, resident_id), s.get(Contact, contact_id)):
            assert target is not None
            target.portrait_id = portrait.display.sha256
    return portrait.display.sha256


@dataclass
class Browser:
    """A logged-in staff browser: its cookies and its session's CSRF token."""

    http: requests.Session
    csrf: str


def log_in(backend: RunningBackend, email: str) -> Browser:
    http = requests.Session()
    page = http.get(f"{backend.base_url}/staff/login", timeout=10)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    r = http.post(
        f"{backend.base_url}/staff/login",
        data={"email": email, "password": PASSWORD, "csrf_token": match.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 303, r.text
    with backend.db.session() as s:
        row = s.get(StaffSession, sessions.token_hash(http.cookies["liens_staff"]))
        assert row is not None
        return Browser(http, row.csrf_token)


def add_staff(backend: RunningBackend, email: str, role: str, homes: list[str]) -> None:
    with backend.db.session() as s:
        accounts.add_staff(
            session=s,
            email=email,
            name=email,
            password=PASSWORD,
            role=role,
            home_ids=homes,
            by="test",
        )


def send(
    backend: RunningBackend,
    endpoint: Endpoint,
    values: dict[str, Any],
    who: Browser | None,
    *,
    csrf: str | None = "session",
) -> requests.Response:
    """One request as a browser would send it; ids of ``values`` also in the query and form."""
    http = who.http if who is not None else requests.Session()
    url = backend.base_url + fill_path(endpoint.path, values)
    ids = {name: values[key] for name, key in FILL.items() if values.get(key)}
    headers = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    data: dict[str, str] | None = None
    if endpoint.method in STATE_CHANGING:
        token = who.csrf if (who is not None and csrf == "session") else (csrf or "")
        data = dict(ids)
        if token:
            data["csrf_token"] = token
            headers["X-CSRF-Token"] = token
    return http.request(
        endpoint.method,
        url,
        params=ids if endpoint.method == "GET" else None,
        data=data,
        headers=headers,
        allow_redirects=False,
        timeout=15,
    )


def to_login(r: requests.Response) -> bool:
    return r.status_code == 303 and r.headers.get("location", "").startswith("/staff/login")


def leaks(r: requests.Response, other: dict[str, Any]) -> list[str]:
    """What of the other home a successful page shows."""
    if r.status_code >= 300:
        return []
    markers = [*other["names"], other["home"], other["resident"], other["contact"], other["tablet"]]
    return [m for m in markers if m and m in r.text]


@pytest.fixture
def world(backend: RunningBackend) -> dict[str, Any]:
    a = seed_home(
        backend, home="Les Tilleuls", people=["Marcel", "Odette", "Julie", "Thomas", "Louise"]
    )
    b = seed_home(
        backend,
        home="Maison Bleuet-Zz",
        people=["Bérangère", "Barthélemy", "Bastien", "Brunehilde", "Bertille"],
    )
    add_staff(backend, "aide.a@example.org", "staff", [a["home"]])
    add_staff(backend, "direction@example.org", "admin", [])
    return {"a": a, "b": b}


def test_every_route_is_guarded(backend: RunningBackend, world: dict[str, Any]) -> None:
    app = create_app(backend.backend)  # the same route table as the server's
    endpoints, sockets, mounts = route_table(app)
    a, b = world["a"], world["b"]
    staff_a = log_in(backend, "aide.a@example.org")
    admin = log_in(backend, "direction@example.org")
    failures: list[str] = []

    assert set(mounts) <= MOUNTS, f"a mount nobody declared public or private: {mounts}"
    for path in sockets:
        unknown = [p for p in PARAM.findall(path) if p not in FILL]
        if unknown:
            failures.append(f"WS {path}: fill {unknown} in FILL")

    checked = [e for e in endpoints if all(p in FILL for p in e.params)]
    for e in endpoints:
        if e not in checked:
            unknown = [p for p in e.params if p not in FILL]
            failures.append(f"{e}: path parameters {unknown} unknown; say how to fill them in FILL")

    fresh = itertools.count()
    for e in checked:
        if e.tablet_only:
            for who, name in ((None, "anonymous"), (staff_a, "staff of A"), (admin, "admin")):
                r = send(backend, e, b, who)
                if r.status_code != 401:
                    failures.append(f"{e} {name}: {r.status_code}, expected 401 (tablets only)")
            continue
        # Anonymous: only the public routes answer.
        if not e.public:
            r = send(backend, e, b, None)
            if not (to_login(r) or r.status_code in (401, 403, 404)):
                failures.append(f"{e} anonymous: {r.status_code}, expected login/401/403/404")
        if e.public or e.path in SESSION_ENDING:
            continue

        # Staff of A, on B's objects: refused, whatever the CSRF token says.
        r = send(backend, e, b, staff_a)
        if e.params:
            if r.status_code not in (403, 404):
                failures.append(f"{e} staff of A on B: {r.status_code}, expected 403/404")
        elif r.status_code >= 500:
            failures.append(f"{e} staff of A: {r.status_code}")
        elif found := leaks(r, b):
            failures.append(f"{e} staff of A sees home B's {found}")
        if e.method == "GET" and e.params:
            # Positive control: their own home's objects are found.
            r = send(backend, e, a, staff_a)
            if r.status_code == 404 or r.status_code >= 500 or to_login(r):
                failures.append(f"{e} staff of A on A: {r.status_code}")
            elif found := leaks(r, b):
                failures.append(f"{e} staff of A sees home B's {found}")

        # CSRF: a state-changing dashboard request without the session's token is refused.
        if e.method in STATE_CHANGING and e.path.startswith("/staff/"):
            for token in (None, "forged-" + "x" * 36):
                r = send(backend, e, b, admin, csrf=token)
                if r.status_code != 403:
                    failures.append(f"{e} admin with CSRF token {token!r}: {r.status_code}")

        # The administrator reaches every home; changes go to a fresh home each time.
        target = b
        if e.method in STATE_CHANGING:
            n = next(fresh)
            target = seed_home(
                backend,
                home=f"Maison C{n}",
                people=[f"Cyprien{n}", f"Célestine{n}", f"Corentin{n}", f"Coralie{n}", f"C{n}"],
                with_staff="staff" in {FILL[p] for p in e.params},
            )
        r = send(backend, e, target, admin)
        allowed_404 = e.path in ADMIN_MAY_404
        if r.status_code == 403 or (r.status_code == 404 and not allowed_404):
            failures.append(f"{e} admin on another home: {r.status_code}")
        elif r.status_code >= 500 or to_login(r):
            failures.append(f"{e} admin: {r.status_code}")

    # The routes that end a session: refused without a token, then they do end it.
    for e in checked:
        if e.path in SESSION_ENDING:
            throwaway = log_in(backend, "aide.a@example.org")
            if send(backend, e, b, throwaway, csrf=None).status_code != 403:
                failures.append(f"{e} without a CSRF token: not refused")
            send(backend, e, b, throwaway)
            again = throwaway.http.get(
                f"{backend.base_url}/staff/login", allow_redirects=False, timeout=10
            )
            if again.status_code != 200:  # a live session would be sent on to the dashboard
                failures.append(f"{e}: the session is still alive afterwards")

    assert not failures, "\n".join(failures)
    assert len(checked) >= 8, [str(e) for e in checked]  # the walk really walked


def _socket_answer(url: str) -> str:
    """What a client gets from ``url``: ``"refused …"`` (the handshake, or a close before any
    message), or ``"message …"`` when something came through."""
    try:
        with connect(url, open_timeout=5) as ws:
            first = ws.recv(timeout=3)
    except InvalidStatus as exc:
        return f"refused: HTTP {exc.response.status_code}"
    except ConnectionClosed as exc:
        return f"refused: closed {exc.rcvd.code if exc.rcvd else '?'}"
    except TimeoutError:
        return "refused: silent"
    return f"message {str(first)[:80]}"


def test_anonymous_websockets_are_refused(backend: RunningBackend, world: dict[str, Any]) -> None:
    """Every WebSocket route, opened for real with keys that do not (or no longer) work."""
    a, b = world["a"], world["b"]
    # A revoked link (B's contact), and a regenerated one's old token (A's second contact).
    with backend.db.session() as s:
        directory.get_contact(s, b["contact"]).link_active = False
    old_token = a["token2"]
    with backend.db.session() as s:
        staff_actions.regenerate_link(session=s, contact_id=_contact_of(s, old_token), by="test")
    cases = {
        "/f/{token}/ws": {
            "bad token": "/f/not-a-token/ws",
            "too long a token": f"/f/{'x' * 65}/ws",
            "revoked token": f"/f/{b['token']}/ws",
            "regenerated link's old token": f"/f/{old_token}/ws",
            "no token": "/f//ws",
        }
    }
    _, sockets, _ = route_table(create_app(backend.backend))
    assert set(sockets) == set(cases), f"say how to open {set(sockets) - set(cases)} anonymously"
    ws_base = backend.base_url.replace("http://", "ws://")
    # The positive control: a working link's socket answers.
    assert _socket_answer(f"{ws_base}/f/{a['token']}/ws").startswith("message"), "nothing works"
    answers = {
        f"{path} ({what})": _socket_answer(ws_base + url)
        for path, urls in cases.items()
        for what, url in urls.items()
    }
    let_in = {case: answer for case, answer in answers.items() if not answer.startswith("refused")}
    assert not let_in, f"answered an anonymous client: {let_in}"
    assert len(answers) == 5


def _contact_of(session: Any, token: str) -> str:
    contact = directory.contact_by_token(session, token)
    assert contact is not None
    return contact.id


def hello(backend: RunningBackend, token: str) -> dict[str, Any]:
    url = backend.base_url.replace("http://", "ws://") + f"/f/{token}/ws"
    with connect(url, open_timeout=5) as ws:
        while True:
            message = json.loads(ws.recv(timeout=5))
            if message.get("type") == "hello":
                return dict(message)


def test_a_personal_link_reaches_only_that_relatives_residents(
    backend: RunningBackend, world: dict[str, Any]
) -> None:
    a, b = world["a"], world["b"]
    page = requests.get(f"{backend.base_url}/f/{a['token']}", timeout=10)
    assert page.status_code == 200
    assert "Marcel" in page.text  # approved
    for other in ("Odette", *b["names"]):  # revoked for this contact; another home
        assert other not in page.text
    assert [r["id"] for r in hello(backend, a["token"])["residents"]] == [a["resident"]]
    assert [r["id"] for r in hello(backend, a["token2"])["residents"]] == [a["resident2"]]
    assert [r["id"] for r in hello(backend, b["token"])["residents"]] == [b["resident"]]

    # A revoked link opens nothing, page or socket.
    with backend.db.session() as s:
        directory.get_contact(s, a["contact"]).link_active = False
    assert requests.get(f"{backend.base_url}/f/{a['token']}", timeout=10).status_code == 404
    assert requests.get(f"{backend.base_url}/f/not-a-token", timeout=10).status_code == 404
    with pytest.raises(Exception):  # noqa: B017, PT011 - closed with 4404 before any hello
        hello(backend, a["token"])
