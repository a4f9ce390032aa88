"""The tablet's config carries the staff PIN hashes that open its staff screen, offline."""

from __future__ import annotations

from pathlib import Path

from backend.auth import accounts, passwords
from backend.db import Database
from backend.models import Staff, Tablet
from backend.services import directory
from backend.services import tablets as tablet_service
from screens.staff.access import match_pin, staff_pins


def test_config_lists_active_staff_of_the_home_and_admins_with_a_pin(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'liens.db'}")
    db.migrate()
    with db.session() as s:
        home = directory.add_home(session=s, name="Les Tilleuls", by="test")
        other = directory.add_home(session=s, name="Les Acacias", by="test")
        tablet = tablet_service.add_tablet(session=s, home_id=home.id, name="Salon", by="test")

        def staff(email: str, *, role: str = "staff", homes: list[str], pin: str | None) -> str:
            member = accounts.add_staff(
                session=s,
                email=email,
                name=email.split("@")[0].title(),
                password="long enough password",
                role=role,
                home_ids=homes,
                by="test",
            )
            if pin:
                accounts.set_pin(session=s, staff=member, pin=pin, by="test")
            s.flush()
            return member.id

        here = staff("claire@ehpad.fr", homes=[home.id], pin="2468")
        staff("nopin@ehpad.fr", homes=[home.id], pin=None)
        staff("elsewhere@ehpad.fr", homes=[other.id], pin="1357")
        admin = staff("admin@ehpad.fr", role="admin", homes=[], pin="9999")
        gone = staff("gone@ehpad.fr", homes=[home.id], pin="1111")
        accounts.disable(session=s, staff=s.get(Staff, gone), by="test")
        s.flush()

        config = tablet_service.build_config(s, s.get(Tablet, tablet.id))
    entries = config["staff_pins"]
    assert sorted(e["staff_id"] for e in entries) == sorted([here, admin])
    assert set(entries[0]) == {"staff_id", "name", "pin_hash"}
    assert match_pin("2468", staff_pins(config))["staff_id"] == here
    assert match_pin("1357", staff_pins(config)) is None  # another home's staff
    assert passwords.verify_pin(entries[0]["pin_hash"], "0000") is False
