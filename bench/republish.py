"""How long a backend start takes to republish every enrolled tablet's configuration.

``python -m bench.republish --tablets 1000`` seeds a fresh database (PostgreSQL when the test
server answers, else SQLite; ``--sqlite`` forces it) with ``--tablets`` enrolled tablets,
``--per-home`` tablets per home (half serving the whole home, half a few residents),
``--residents`` residents per home with two approved contacts each, and staff with PINs; then,
on a real Mosquitto 2 (tests/fixtures/mosquitto.py), it times:

- ``before``: the way ``Backend.start`` used to do it (one configuration built per tablet with
  ``tablet_service.build_config``, one acknowledged publish at a time), kept here as
  :func:`per_tablet`;
- ``after``: :func:`backend.runtime.republish` (configurations built per batch with
  ``build_configs``, each batch published without waiting, then its acknowledgements awaited),
  what the backend's background thread runs now.

Both count the retained configurations on the broker afterwards. Figures in docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from backend.db import Database
from backend.models import (
    Approval,
    Contact,
    Home,
    Resident,
    Staff,
    StaffRole,
    Tablet,
    new_id,
    staff_homes,
    tablet_residents,
    utcnow,
)
from backend.mqtt.bridge import Bridge
from backend.services import tablets as tablet_service


def seed(
    db: Database, *, tablets: int, per_home: int = 10, residents: int = 10, contacts: int = 2
) -> list[str]:
    """Enrolled tablets in homes of ``residents`` residents; return the tablet ids."""
    now = utcnow()
    ids: list[str] = []
    homes = max(1, -(-tablets // per_home))
    with db.session() as s:
        admin = Staff(
            email=f"admin-{new_id()}@example.org",
            name="Admin",
            password_hash="x",
            pin_hash="$argon2id$admin",
            role=StaffRole.ADMIN.value,
        )
        s.add(admin)
        for h in range(homes):
            home = Home(id=new_id(), name=f"Maison {h}")
            s.add(home)
            staff = Staff(
                email=f"staff-{new_id()}@example.org",
                name=f"Soignant {h}",
                password_hash="x",
                pin_hash=f"$argon2id${h}",
            )
            s.add(staff)
            s.flush()
            s.execute(staff_homes.insert().values(staff_id=staff.id, home_id=home.id))
            rs = []
            for r in range(residents):
                youth = r % 5 == 4
                resident = Resident(
                    id=new_id(),
                    home_id=home.id,
                    first_name=f"R{h}-{r}",
                    kind="youth" if youth else "senior",
                    pin_hash="$argon2id$pin" if youth and r % 2 else "",
                    portrait_id=f"{r:064x}" if r % 3 == 0 else None,
                    created_at=now + timedelta(microseconds=r),
                )
                rs.append(resident)
                s.add(resident)
                for c in range(contacts):
                    contact = Contact(
                        id=new_id(),
                        home_id=home.id,
                        display_name=f"C{h}-{r}-{c}",
                        relation="fille",
                        portrait_id=f"{c + 7:064x}" if c == 0 else None,
                    )
                    s.add(contact)
                    s.add(
                        Approval(
                            resident_id=resident.id,
                            contact_id=contact.id,
                            policy={"hours": "9-20"},
                            decided_at=now + timedelta(seconds=c),
                        )
                    )
            s.flush()
            for t in range(min(per_home, tablets - len(ids))):
                tablet = Tablet(home_id=home.id, name=f"T{h}-{t}", enrolled_at=now)
                s.add(tablet)
                s.flush()
                if t % 2:
                    s.execute(
                        tablet_residents.insert(),
                        [{"tablet_id": tablet.id, "resident_id": r.id} for r in rs[::2]],
                    )
                ids.append(tablet.id)
    return ids


def per_tablet(db: Database, bridge: Bridge, tablet_ids: list[str]) -> int:
    """The start's republish as it was: one build and one acknowledged publish per tablet."""
    done = 0
    for tablet_id in tablet_ids:
        with db.session() as session:
            tablet = session.get(Tablet, tablet_id)
            if tablet is None:
                continue
            data = tablet_service.build_config(session, tablet)
        bridge.publish_config(tablet_id, data)
        done += 1
    return done


def count_retained(
    host: str, port: int, username: str, password: str, expected: int, revision: int
) -> int:
    """Subscribe to every configuration; count the retained ones at ``revision`` or newer."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    seen: set[str] = set()
    done = threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        if message.retain and message.payload:
            if json.loads(message.payload)["data"]["revision"] < revision:
                return
            seen.add(message.topic)
            if len(seen) >= expected:
                done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe("liens/v1/tablets/+/config", qos=1)
    client.connect(host, port)
    client.loop_start()
    done.wait(60)
    client.loop_stop()
    client.disconnect()
    return len(seen)


def run(tablets: int, per_home: int, residents: int, sqlite: bool) -> dict[str, Any]:
    from backend.broker.dynsec import DynsecAdmin
    from backend.runtime import republish
    from tests.fixtures.mosquitto import running_mosquitto
    from tests.replicas import fresh_postgres, postgres_available

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="liens-bench-")))
        if sqlite or postgres_available():
            url = f"sqlite:///{workdir / 'liens.db'}"
        else:
            url = stack.enter_context(fresh_postgres())
        db = Database(url)
        db.migrate()
        started = time.perf_counter()
        ids = seed(db, tablets=tablets, per_home=per_home, residents=residents)
        seeded = time.perf_counter() - started
        broker = stack.enter_context(running_mosquitto(workdir / "mosquitto"))
        admin = DynsecAdmin(broker.host, broker.port, broker.admin_username, broker.admin_password)
        admin.ensure_backend_role(broker.admin_username)
        bridge = Bridge(
            host=broker.host,
            port=broker.port,
            username=broker.admin_username,
            password=broker.admin_password,
            subscribe=False,
        )
        bridge.start()
        stack.callback(bridge.stop)
        figures: dict[str, Any] = {
            "database": url.split(":", 1)[0],
            "tablets": tablets,
            "residents_per_home": residents,
            "tablets_per_home": per_home,
            "seed_s": round(seeded, 1),
        }
        started = time.perf_counter()
        per_tablet(db, bridge, ids)
        figures["before_s"] = round(time.perf_counter() - started, 2)
        figures["before_retained"] = count_retained(
            broker.host, broker.port, broker.admin_username, broker.admin_password, len(ids), 0
        )
        with db.session() as s:  # a new revision: the count below sees the new messages
            for tablet in s.scalars(select(Tablet)):
                tablet.config_revision += 1
        started = time.perf_counter()
        result = republish(db, bridge, threading.Event())
        figures["after_s"] = round(time.perf_counter() - started, 2)
        figures["after_published"] = len(result.published)
        figures["after_retained"] = count_retained(
            broker.host, broker.port, broker.admin_username, broker.admin_password, len(ids), 1
        )
        db.engine.dispose()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tablets", type=int, default=1000)
    parser.add_argument("--per-home", type=int, default=10)
    parser.add_argument("--residents", type=int, default=10, help="residents per home")
    parser.add_argument("--sqlite", action="store_true", help="SQLite even if PostgreSQL answers")
    args = parser.parse_args()
    os.environ.setdefault("LIENS_LOG_LEVEL", "WARNING")
    print(json.dumps(run(args.tablets, args.per_home, args.residents, args.sqlite), indent=2))


if __name__ == "__main__":
    main()
