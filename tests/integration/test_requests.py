"""Contact requests: from a child's tablet and from a relative's public page, to staff's decision.

A real backend (its own Mosquitto, SQLite) and the real ``KioskCore`` in-process: the request
travels tablet outbox -> MQTT (QoS 1) -> bridge -> queue, and an approval comes back as the
tablet's configuration.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from backend.models import AuditEntry, Contact, ContactRequest, RequestStatus, TabletEvent
from backend.services import directory
from backend.services import requests as request_service
from backend.services import tablets as tablet_service
from backend.services.errors import Conflict, ServiceError
from kiosk import protocol
from kiosk.core import KioskCore
from kiosk.protocol import Channel, Envelope, MessageType
from kiosk.settings import KioskSettings
from tests.helpers import RunningBackend

SENT = "L'équipe de la résidence étudiera votre demande."


def text(response: requests.Response) -> str:
    return html.unescape(response.text)


def eventually(check: Callable[[], Any], timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def seed_children_home(b: RunningBackend) -> dict[str, str]:
    """A children's home; the tablet serves Léa only (Noé lives there too)."""
    with b.db.session() as s:
        home = directory.add_home(session=s, name="Maison d'enfants Les Cèdres", by="test")
        lea = directory.add_resident(
            session=s, home_id=home.id, first_name="Léa", kind="youth", by="test"
        )
        noe = directory.add_resident(
            session=s, home_id=home.id, first_name="Noé", kind="youth", by="test"
        )
        tablet = tablet_service.add_tablet(
            session=s, home_id=home.id, name="Chambre de Léa", resident_ids=[lea.id], by="test"
        )
        return {
            "home": home.id,
            "slug": str(home.slug),
            "lea": lea.id,
            "noe": noe.id,
            "tablet": tablet.id,
        }


@pytest.fixture
def children(backend: RunningBackend) -> dict[str, str]:
    return seed_children_home(backend)


@pytest.fixture
def tablet(
    backend: RunningBackend, children: dict[str, str], tmp_path: Path
) -> Iterator[KioskCore]:
    """The real kiosk core, enrolled and online with its first configuration."""
    core = KioskCore(KioskSettings(data_dir=tmp_path / "kiosk", server_url=backend.base_url))
    core.enrol(backend.base_url, backend.issue_code(children["tablet"]))
    try:
        eventually(lambda: core.connection_state == "online" and core.config is not None)
        yield core
    finally:
        core.close()


def requests_of(b: RunningBackend) -> list[ContactRequest]:
    with b.db.session() as s:
        found = list(s.scalars(select(ContactRequest).order_by(ContactRequest.created_at)))
        s.expunge_all()
        return found


def audit_of(b: RunningBackend, action: str) -> list[AuditEntry]:
    with b.db.session() as s:
        found = list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        s.expunge_all()
        return found


def publish_config_of(b: RunningBackend, resident_id: str) -> None:
    """What the dashboard does after a decision: bump and republish the serving tablets."""
    with b.db.session() as s:
        ids = tablet_service.tablets_serving(s, resident_id)
        tablet_service.bump_revisions(s, ids)
    b.backend.publish_configs(ids)


# --- from the tablet ----------------------------------------------------------------------------


def test_tablet_request_lands_once_in_the_queue_even_when_delivered_twice(
    backend: RunningBackend, children: dict[str, str], tablet: KioskCore
) -> None:
    event_id = tablet.request_contact(children["lea"], who="Mum", relation="mother")
    queued = eventually(lambda: requests_of(backend))
    assert [(r.id, r.source, r.resident_id, r.relation, r.requester_name) for r in queued] == [
        ("t-" + event_id, "tablet", children["lea"], "mother", "Maman")
    ]
    assert queued[0].status == RequestStatus.PENDING.value
    assert queued[0].home_id == children["home"]

    # QoS 1 means "at least once": the same event again (same id) adds nothing.
    with backend.db.session() as s:
        stored = s.get(TabletEvent, event_id)
        assert stored is not None
        envelope = Envelope(
            type=MessageType.EVENT, data=dict(stored.data), id=stored.id, ts=stored.ts
        )
    topic = protocol.topic(children["tablet"], Channel.EVENTS)
    assert backend.backend.bridge is not None
    for _ in range(2):
        assert backend.backend.bridge.handle(topic, envelope.to_bytes())
    # ...and the service called directly with the same event id is idempotent too.
    with backend.db.session() as s:
        again = request_service.create_from_tablet(
            session=s,
            tablet_id=children["tablet"],
            event_id=event_id,
            resident_id=children["lea"],
            who="Mum",
            relation="mother",
        )
        assert again is not None and again.id == "t-" + event_id
        assert len(request_service.pending_requests(s, {children["home"]})) == 1
        assert request_service.pending_requests(s, {"another-home"}) == []
        assert len(request_service.pending_requests(s, None)) == 1
    created = audit_of(backend, "request.create")
    assert [(a.actor, a.target_id) for a in created] == [
        (f"tablet:{children['tablet']}", "t-" + event_id)
    ]


def test_request_for_a_resident_the_tablet_does_not_serve_is_dropped(
    backend: RunningBackend, children: dict[str, str], tablet: KioskCore
) -> None:
    event_id = tablet.request_contact(children["noe"], who="Dad", relation="father")
    # The event itself is kept (usage log); no request is queued for Noé.
    with_event = eventually(lambda: _event_stored(backend, event_id))
    assert with_event
    assert requests_of(backend) == []
    # A resident of another home, or an unknown one, is dropped the same way.
    with backend.db.session() as s:
        assert (
            request_service.create_from_tablet(
                session=s,
                tablet_id=children["tablet"],
                event_id="e" * 32,
                resident_id="nobody",
                who="Dad",
                relation="father",
            )
            is None
        )


def _event_stored(b: RunningBackend, event_id: str) -> bool:
    with b.db.session() as s:
        return s.get(TabletEvent, event_id) is not None


def test_approving_a_tablet_request_shows_the_contact_on_the_tablet(
    backend: RunningBackend, children: dict[str, str], tablet: KioskCore
) -> None:
    tablet.request_contact(children["lea"], who="Grandma", relation="grandmother")
    (queued,) = eventually(lambda: requests_of(backend))
    policy = {"windows": [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "08:00", "end": "21:00"}]}
    with backend.db.session() as s:
        approval = request_service.approve_request(
            session=s,
            request_id=queued.id,
            by="staff:Claire Martin",
            policy=policy,
            display_name="Mamie Jo",
        )
        assert approval.resident_id == children["lea"]
        assert approval.policy == policy
        contact = s.get(Contact, approval.contact_id)
        assert contact is not None
        assert (contact.display_name, contact.relation, contact.home_id) == (
            "Mamie Jo",
            "Grand-mère",
            children["home"],
        )
        assert tablet_service.tablets_serving(s, approval.resident_id) == [children["tablet"]]
    publish_config_of(backend, children["lea"])

    def lea_contacts() -> list[str]:
        config = tablet.config or {}
        for resident in config.get("residents", []):
            if resident["id"] == children["lea"]:
                return [c["display_name"] for c in resident.get("contacts", [])]
        return []

    assert eventually(lea_contacts) == ["Mamie Jo"]
    (decided,) = requests_of(backend)
    assert decided.status == RequestStatus.APPROVED.value
    assert decided.contact_id == approval.contact_id
    assert decided.decided_by == "staff:Claire Martin" and decided.decided_at is not None
    with backend.db.session() as s:
        assert request_service.pending_requests(s, None) == []
        # A decided request cannot be decided again.
        with pytest.raises(Conflict):
            request_service.refuse_request(session=s, request_id=decided.id, by="x", note="")
    assert [a.actor for a in audit_of(backend, "request.approve")] == ["staff:Claire Martin"]
    assert [a.actor for a in audit_of(backend, "approval.approve")] == ["staff:Claire Martin"]


# --- from a relative, on the public page ------------------------------------------------------


def form(**changes: str) -> dict[str, str]:
    fields = {
        "requester_name": "Sophie Durand",
        "relation": "Tante",
        "resident_name": "Léa",
        "message": "Je suis la sœur de sa maman.",
        "email": "sophie.durand@example.org",
        "phone": "",
        "website": "",
    }
    fields.update(changes)
    return fields


def test_public_page_creates_a_request_and_says_the_same_whoever_is_named(
    backend: RunningBackend, children: dict[str, str]
) -> None:
    url = f"{backend.base_url}/h/{children['slug']}/demande"
    page = requests.get(url, timeout=10)
    assert page.status_code == 200
    assert "Demander à être en lien avec un résident" in text(page)
    assert 'name="website"' in text(page)  # the honeypot is there, hidden
    english = requests.get(url, params={"lang": "en"}, timeout=10)
    assert "Ask to be in touch with a resident" in text(english)
    assert 'action="/h/' + children["slug"] + '/demande?lang=en"' in text(english)

    known = requests.post(url, data=form(), timeout=10)
    unknown = requests.post(url, data=form(resident_name="Personne Inconnue"), timeout=10)
    assert known.status_code == unknown.status_code == 200
    assert SENT in text(known)
    # Never reveal whether a resident lives here: the very same page either way.
    assert known.text == unknown.text

    stored = requests_of(backend)
    assert [(r.source, r.requester_name, r.resident_name_given, r.resident_id) for r in stored] == [
        ("relative", "Sophie Durand", "Léa", None),
        ("relative", "Sophie Durand", "Personne Inconnue", None),
    ]
    assert stored[0].email == "sophie.durand@example.org"
    assert stored[0].relation == "Tante" and stored[0].home_id == children["home"]

    missing = requests.get(f"{backend.base_url}/h/nowhere/demande", timeout=10)
    assert missing.status_code == 404
    assert "Il n'y a pas de page de demande à cette adresse" in text(missing)
    assert (
        requests.post(f"{backend.base_url}/h/nowhere/demande", data=form(), timeout=10).status_code
        == 404
    )


def test_a_bad_form_gets_sentences_and_stores_nothing(
    backend: RunningBackend, children: dict[str, str]
) -> None:
    url = f"{backend.base_url}/h/{children['slug']}/demande"
    bad = requests.post(
        url,
        data=form(requester_name="  ", resident_name="", email="", phone=""),
        timeout=10,
    )
    assert bad.status_code == 400
    assert "Indiquez votre nom." in text(bad)
    assert "Indiquez le nom du résident avec qui vous souhaitez être en lien." in text(bad)
    assert "Indiquez une adresse e-mail ou un numéro de téléphone" in text(bad)
    assert "Je suis la sœur de sa maman." in text(bad)  # what was typed is kept
    wrong = requests.post(url, data=form(email="sophie@", phone="12"), timeout=10)
    assert wrong.status_code == 400
    assert "Cette adresse e-mail ne semble pas correcte." in text(wrong)
    assert "Ce numéro de téléphone ne semble pas correct." in text(wrong)
    too_long = requests.post(url, data=form(message="x" * 2001), timeout=10)
    assert too_long.status_code == 400
    assert "Votre message est trop long" in text(too_long)
    assert requests_of(backend) == []
    # A phone number alone is enough.
    phone_only = requests.post(url, data=form(email="", phone="06 12 34 56 78"), timeout=10)
    assert phone_only.status_code == 200
    assert [r.phone for r in requests_of(backend)] == ["06 12 34 56 78"]


def test_honeypot_and_rate_limit_keep_spam_out(
    backend: RunningBackend, children: dict[str, str]
) -> None:
    url = f"{backend.base_url}/h/{children['slug']}/demande"
    bot = requests.post(url, data=form(website="http://spam.example"), timeout=10)
    assert bot.status_code == 200 and SENT in text(bot)
    assert requests_of(backend) == []
    for n in range(4):  # the bot's post counted: 4 more reach the limit of 5 an hour
        ok = requests.post(url, data=form(requester_name=f"Personne {n}"), timeout=10)
        assert ok.status_code == 200, ok.text
    limited = requests.post(url, data=form(requester_name="Une de trop"), timeout=10)
    assert limited.status_code == 429
    assert "Réessayez plus tard" in text(limited)
    assert len(requests_of(backend)) == 4


def test_relative_request_needs_a_resident_then_approves_and_refusal_keeps_the_note(
    backend: RunningBackend, children: dict[str, str]
) -> None:
    with backend.db.session() as s:
        first = request_service.create_from_relative(
            session=s,
            home_slug=children["slug"],
            requester_name="Sophie Durand",
            relation="Tante",
            resident_name_given="Léa",
            message="",
            email="Sophie@Example.org",
            phone="",
        )
        second = request_service.create_from_relative(
            session=s,
            home_slug=children["slug"],
            requester_name="Inconnu",
            relation="",
            resident_name_given="Noé",
            message="",
            email="",
            phone="+33 6 12 34 56 78",
        )
        assert [r.first_name for r in request_service.suggested_residents(s, first)] == ["Léa"]
        with pytest.raises(ServiceError):
            request_service.approve_request(
                session=s, request_id=first.id, by="staff:Claire", policy=None
            )
        with pytest.raises(request_service.RequestInvalid) as invalid:
            request_service.create_from_relative(
                session=s,
                home_slug=children["slug"],
                requester_name="",
                relation="",
                resident_name_given="",
                message="",
                email="",
                phone="",
            )
        assert len(invalid.value.problems) == 3
        first_id, second_id = first.id, second.id

    with backend.db.session() as s:
        approval = request_service.approve_request(
            session=s,
            request_id=first_id,
            by="staff:Claire",
            policy=None,
            resident_id=children["lea"],
        )
        contact = s.get(Contact, approval.contact_id)
        assert contact is not None
        assert (contact.display_name, contact.relation, contact.email) == (
            "Sophie Durand",
            "Tante",
            "sophie@example.org",
        )
        refused = request_service.refuse_request(
            session=s, request_id=second_id, by="staff:Marc", note="Personne inconnue de l'équipe"
        )
        assert refused.status == RequestStatus.REFUSED.value
    stored = {r.id: r for r in requests_of(backend)}
    assert stored[second_id].decision_note == "Personne inconnue de l'équipe"
    assert stored[second_id].decided_by == "staff:Marc"
    assert stored[first_id].resident_id == children["lea"]
    refusals = audit_of(backend, "request.refuse")
    assert [(a.actor, a.target_id, a.details["note"]) for a in refusals] == [
        ("staff:Marc", second_id, "Personne inconnue de l'équipe")
    ]
    assert [a.actor for a in audit_of(backend, "request.approve")] == ["staff:Claire"]
