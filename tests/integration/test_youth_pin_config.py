"""A child's own PIN reaches the tablet as an argon2 hash (youth only) and verifies offline."""

from __future__ import annotations

from pathlib import Path

from backend.db import Database
from backend.models import Tablet
from backend.services import directory, staff_actions
from backend.services import tablets as tablet_service
from kiosk.session import Session, verify_pin


def test_config_carries_youth_pin_hashes_only(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'liens.db'}")
    db.migrate()
    with db.session() as s:
        home = directory.add_home(session=s, name="Les Tilleuls", by="test")
        tablet = tablet_service.add_tablet(session=s, home_id=home.id, name="Salle", by="test")
        senior = directory.add_resident(session=s, home_id=home.id, first_name="Jeanne", by="t")
        lea = directory.add_resident(
            session=s, home_id=home.id, first_name="Léa", kind="youth", by="t"
        )
        directory.add_resident(session=s, home_id=home.id, first_name="Yanis", kind="youth", by="t")
        s.flush()
        staff_actions.set_resident_pin(session=s, resident_id=lea.id, pin="2580", by="test")
        s.flush()
        config = tablet_service.build_config(s, s.get(Tablet, tablet.id))
    by_name = {r["first_name"]: r for r in config["residents"]}
    assert "pin_hash" not in by_name["Jeanne"]
    assert by_name["Yanis"]["pin_hash"] == ""  # no PIN chosen yet
    pin_hash = by_name["Léa"]["pin_hash"]
    assert pin_hash.startswith("$argon2") and "2580" not in pin_hash
    assert verify_pin(pin_hash, "2580") and not verify_pin(pin_hash, "2581")
    assert Session().check_pin(by_name["Léa"]["id"], pin_hash, "2580").result == "ok"
    assert senior.id == by_name["Jeanne"]["id"]
