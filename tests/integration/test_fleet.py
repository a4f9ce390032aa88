"""The tablet fleet: a real headless kiosk's heartbeat reaches its tablet row through the broker
(the backend's own Mosquitto and a shared one; events are stored in batches), and the fleet page
warns in words about what needs someone's attention."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from backend.models import Tablet, TabletEvent
from backend.services import tablets as tablet_service
from kiosk import heartbeat
from tests.helpers import HeadlessKiosk, RunningBackend, poll_until
from tests.integration.test_dashboard import add_staff, logged_in


def test_heartbeat_from_a_headless_kiosk_updates_its_tablet_row(
    any_backend: RunningBackend, tmp_path: Path
) -> None:
    b = any_backend
    ids = b.seed()
    kiosk = HeadlessKiosk(tmp_path / "kiosk", b.base_url, code=b.issue_code(ids["tablet"]))
    try:
        kiosk.wait_for(lambda e: e["event"] == "config", timeout=30)

        def beat() -> Tablet | None:
            with b.db.session() as s:
                tablet = s.get(Tablet, ids["tablet"])
                assert tablet is not None
                s.expunge(tablet)
                return tablet if tablet.heartbeat_at is not None else None

        tablet = poll_until(beat, 30.0, "the tablet's first heartbeat in its row")
    finally:
        kiosk.stop()
    assert tablet.free_storage_mb is not None and tablet.free_storage_mb > 0
    assert tablet.app_version  # the kiosk's version
    assert abs((datetime.now(UTC) - tablet.heartbeat_at).total_seconds()) < 120
    # This machine has no battery: unknown, not zero.
    expected = heartbeat.read_battery()
    assert (tablet.battery_percent, tablet.charging) == expected
    with b.db.session() as s:
        stored = s.scalar(
            select(func.count())
            .select_from(TabletEvent)
            .where(TabletEvent.tablet_id == ids["tablet"], TabletEvent.type == "heartbeat")
        )
    assert stored == 1  # once at start, stored once


def test_an_older_or_repeated_heartbeat_never_overwrites_a_newer_one(
    backend: RunningBackend,
) -> None:
    from backend.mqtt.ingest import apply_heartbeats

    ids = backend.seed()
    now = datetime.now(UTC)
    new, old = now - timedelta(minutes=1), now - timedelta(minutes=20)
    with backend.db.session() as s:
        apply_heartbeats(
            s,
            [
                (
                    ids["tablet"],
                    new.isoformat(),
                    {
                        "battery_percent": 80,
                        "charging": True,
                        "free_storage_mb": 9000,
                        "app_version": "0.2.0",
                    },
                )
            ],
        )
    with backend.db.session() as s:
        apply_heartbeats(
            s,
            [
                (
                    ids["tablet"],
                    old.isoformat(),
                    {
                        "battery_percent": 15,
                        "charging": False,
                        "free_storage_mb": 100,
                        "app_version": "0.1.0",
                    },
                )
            ],
        )
        # Nonsense values are unknown, not stored as they came.
        apply_heartbeats(
            s,
            [
                (
                    ids["tablet"],
                    "not a date",
                    {"battery_percent": "full", "charging": "yes", "free_storage_mb": -5},
                )
            ],
        )
    with backend.db.session() as s:
        tablet = s.get(Tablet, ids["tablet"])
        assert tablet is not None
        # "not a date" is taken as now: newer, so it wins, but with nothing it could not read.
        assert tablet.battery_percent is None and tablet.charging is None
        assert tablet.free_storage_mb == 0 and tablet.app_version == "0.2.0"
        assert tablet.heartbeat_at is not None and tablet.heartbeat_at > new


def test_fleet_page_warns_in_words(backend: RunningBackend) -> None:
    ids = backend.seed()
    now = datetime.now(UTC)
    with backend.db.session() as s:
        home = ids["home"]
        salon = s.get(Tablet, ids["tablet"])
        assert salon is not None
        salon.enrolled_at, salon.online, salon.last_seen = now, False, now - timedelta(hours=3)
        salon.battery_percent, salon.charging, salon.free_storage_mb = 12, False, 300
        salon.app_version = "0.1.0"
        fine = tablet_service.add_tablet(session=s, home_id=home, name="Jardin", by="test")
        fine.enrolled_at, fine.online, fine.last_seen = now, True, now
        fine.battery_percent, fine.charging, fine.free_storage_mb = 15, True, 20_000
        fine.app_version = "0.1.0"
        brief = tablet_service.add_tablet(session=s, home_id=home, name="Cuisine", by="test")
        brief.enrolled_at, brief.online, brief.last_seen = now, False, now - timedelta(minutes=20)
        new = tablet_service.add_tablet(session=s, home_id=home, name="Neuve", by="test")
        new.name = "Neuve"
    add_staff(backend, "ana@example.org", homes=[ids["home"]])
    http, _csrf = logged_in(backend, "ana@example.org")

    page = http.get(f"{backend.base_url}/staff/tablets?lang=en", timeout=10)
    assert page.status_code == 200
    rows = {
        name: re.sub(r"\s+", " ", row)
        for row, name in (
            (m.group(0), re.search(r'#tablets">([^<]+)</a>', m.group(0)).group(1))  # type: ignore[union-attr]
            for m in re.finditer(r'<tr id="tablet-.*?</tr>', page.text, re.S)
        )
    }
    assert list(rows)[:2] == ["Neuve", "Salon"]  # what needs attention first
    salon_row = rows["Salon"]
    assert "Offline for 3 hours: check that it is on and has Wi-Fi." in salon_row
    assert "Battery low (12 %): plug it in." in salon_row
    assert "Storage almost full (300 MB left)." in salon_row
    assert "Not enrolled yet: give it its enrolment code." in rows["Neuve"]
    # Low but charging, online, plenty of room: nothing to say. Offline 20 minutes: not yet.
    assert "warn-list" not in rows["Jardin"] and "charging" in rows["Jardin"]
    assert "19.5 GB" in rows["Jardin"]
    assert "warn-list" not in rows["Cuisine"] and "Offline" in rows["Cuisine"]
    assert "2 tablets need attention." in page.text

    french = http.get(f"{backend.base_url}/staff/tablets", timeout=10).text
    assert "Hors ligne depuis 3 heures" in french and "Batterie faible (12 %)" in french
    assert "Espace presque plein (300 Mo libres)." in french


def test_heartbeat_readings_from_a_power_supply_tree(tmp_path: Path) -> None:
    root = tmp_path / "power_supply"
    (root / "AC").mkdir(parents=True)
    (root / "AC" / "type").write_text("Mains\n")
    (root / "AC" / "online").write_text("1\n")
    (root / "BAT0").mkdir()
    (root / "BAT0" / "type").write_text("Battery\n")
    (root / "BAT0" / "capacity").write_text("42\n")
    (root / "BAT0" / "status").write_text("Charging\n")
    readings = heartbeat.read(tmp_path / "data" / "not-yet", "1.2.3", power_supply=root)
    assert readings.battery_percent == 42 and readings.charging is True
    assert readings.free_storage_mb is not None and readings.free_storage_mb > 0
    assert readings.as_event()["app_version"] == "1.2.3"
    (root / "BAT0" / "status").write_text("Unknown\n")
    assert heartbeat.read_battery(root) == (42, None)
    assert heartbeat.read_battery(tmp_path / "absent") == (None, None)


def test_a_large_fleet_lists_what_needs_attention_then_a_line_per_home(
    backend: RunningBackend,
) -> None:
    from backend.services import directory

    ids = backend.seed()
    now = datetime.now(UTC)
    with backend.db.session() as s:
        other = directory.add_home(session=s, name="Les Mimosas", by="test").id
        for home, count in ((ids["home"], 40), (other, 30)):
            for n in range(count):
                tablet = tablet_service.add_tablet(
                    session=s, home_id=home, name=f"Chambre {n:02d}", by="test"
                )
                tablet.enrolled_at, tablet.online, tablet.last_seen = now, True, now
                tablet.battery_percent, tablet.free_storage_mb = 90, 9000
                if home == other and n < 3:
                    tablet.battery_percent = 5  # three need someone
        salon = s.get(Tablet, ids["tablet"])
        assert salon is not None
        salon.enrolled_at, salon.online, salon.last_seen = now, True, now
    add_staff(backend, "ana@example.org", homes=[ids["home"], other])
    add_staff(backend, "bob@example.org", homes=[ids["home"]])
    http, _csrf = logged_in(backend, "ana@example.org")

    page = http.get(f"{backend.base_url}/staff/tablets?lang=en", timeout=10).text
    listed = re.findall(r'<tr id="tablet-', page)
    assert len(listed) == 3 and page.count("Battery low (5 %)") == 3
    assert "3 tablets need attention." in page and "71 of 71 tablets online." in page
    homes = re.findall(r'<a href="/staff/tablets\?home=([0-9a-f]+)[^"]*">([^<]+)</a>', page)
    assert [name for _id, name in homes] == ["Les Mimosas", "Les Tilleuls"]  # attention first
    whole = http.get(f"{backend.base_url}/staff/tablets?home={other}&lang=en", timeout=10)
    assert whole.status_code == 200 and len(re.findall(r'<tr id="tablet-', whole.text)) == 30
    assert "Tablets of Les Mimosas" in whole.text

    # Another staff member's home, through the filter: 404, nothing listed.
    bob, _ = logged_in(backend, "bob@example.org")
    assert bob.get(f"{backend.base_url}/staff/tablets?home={other}", timeout=10).status_code == 404


def test_a_batch_of_heartbeats_keeps_each_tablets_newest(backend: RunningBackend) -> None:
    """The bridge stores a batch's heartbeats in one statement: the newest per tablet wins."""
    from backend.mqtt.ingest import apply_heartbeats

    ids = backend.seed()
    with backend.db.session() as s:
        other = tablet_service.add_tablet(session=s, home_id=ids["home"], name="Bureau", by="t").id
    now = datetime.now(UTC)

    def beat(tablet: str, minutes_ago: int, battery: int) -> tuple[str, str, dict[str, object]]:
        moment = (now - timedelta(minutes=minutes_ago)).isoformat()
        return (tablet, moment, {"battery_percent": battery, "app_version": f"0.{battery}"})

    with backend.db.session() as s:
        apply_heartbeats(
            s,
            [
                beat(ids["tablet"], 10, 40),
                beat(ids["tablet"], 2, 42),  # the newest of the first tablet
                beat(other, 5, 77),
                beat(ids["tablet"], 30, 30),  # late, from the outbox
            ],
        )
    with backend.db.session() as s:
        first, second = s.get(Tablet, ids["tablet"]), s.get(Tablet, other)
        assert first is not None and second is not None
        assert (first.battery_percent, first.app_version) == (42, "0.42")
        assert (second.battery_percent, second.app_version) == (77, "0.77")
    with backend.db.session() as s:  # a later batch with only older beats changes nothing
        apply_heartbeats(s, [beat(ids["tablet"], 20, 1), beat(other, 60, 2)])
    with backend.db.session() as s:
        first, second = s.get(Tablet, ids["tablet"]), s.get(Tablet, other)
        assert first is not None and second is not None
        assert first.battery_percent == 42 and second.battery_percent == 77
