"""Dashboard pages under a département's data: p50/p95/p99 of real HTTP requests.

Creates a fresh PostgreSQL database (``liens_bench_<pid>``, dropped at the end unless
``--keep``), migrates it, seeds it, starts the backend (``liens serve``: uvicorn, in its own
process) on it, logs in through the login form and measures, one request at a time:

- ``login``: the login page (no database work beyond the session check): the floor;
- ``first_page``: ``/staff/`` with its isolation alerts and residents without contact;
- ``resident``: ``/staff/residents/{id}`` (3 charts of 12 weeks, a resident of the staff's homes
  chosen at random), also split into ``resident_first_visit`` (the first request for that
  resident: its charts drawn by pygal, not in the cache) and ``resident_again`` (the same page
  requested again at once: its charts from the cache);
- ``fleet``: ``/staff/tablets``;

as a member of staff of one home and as a member of staff of every home. Prints one JSON object.

What is seeded (defaults): 100 homes, 8,000 residents (80 per home), 2 contacts and approvals
each (2 % with none), 8 tablets per home, a year of ``usage_daily`` (one row per resident and day
with any use), and for the retention window (90 days) the detail behind it: the call log and the
tablets' ``activity_started``/``activity_stopped`` events, plus one heartbeat per tablet per hour
(tablets beat every 15 min; hourly keeps seeding in minutes, and the pages never read them).
About 5 % of residents have had no call for 8 to 60 days: the isolation alerts. Large tables are
loaded with COPY.

    python -m bench.dashboard [--homes 100] [--residents 8000] [--days 365] [--samples 100]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests

ADMIN_URL = os.environ.get("LIENS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "bench password 0123456789"
TZ = "Europe/Paris"
ACTIVITIES = (("photos", 0.5), ("memory", 0.2), ("clock", 0.2))
TABLETS_PER_HOME = 8
ROOT = Path(__file__).resolve().parents[1]


def hexid() -> str:
    return uuid.uuid4().hex


@contextmanager
def fresh_database(keep: bool) -> Iterator[str]:
    import psycopg

    admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    name = f"liens_bench_{os.getpid()}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# -- seeding -------------------------------------------------------------------------------------


def _count(rng: random.Random, mean: float) -> int:
    """A small random count with the given mean (a cheap stand-in for Poisson)."""
    n = 0
    while mean > 0:
        if rng.random() < min(mean, 1.0):
            n += 1
        mean -= 1.0
    return n


def seed(url: str, *, homes: int, residents: int, days: int, retention: int) -> dict[str, Any]:
    """Seed the database; returns what the measurement needs (ids, counts, seconds)."""
    import psycopg
    from sqlalchemy import insert

    from backend.auth import accounts
    from backend.db import Database
    from backend.models import Approval, Contact, Home, Resident, Tablet
    from backend.services import rollup

    t0 = time.monotonic()
    database = Database(url)
    database.migrate()
    rng = random.Random(7)
    now = datetime.now(UTC)
    zone = ZoneInfo(TZ)
    today = now.astimezone(zone).date()
    long_ago = now - timedelta(days=days + 30)

    home_rows, resident_rows, contact_rows, approval_rows, tablet_rows = [], [], [], [], []
    per_home = max(1, residents // homes)
    people: list[dict[str, Any]] = []
    for h in range(homes):
        home_id = hexid()
        home_rows.append(
            {"id": home_id, "name": f"Résidence {h:03d}", "timezone": TZ, "created_at": long_ago}
        )
        tablets = []
        for t in range(TABLETS_PER_HOME):
            tablet_id = "t" + uuid.uuid4().hex[:12]
            online = rng.random() > 0.05
            tablets.append(tablet_id)
            tablet_rows.append(
                {
                    "id": tablet_id,
                    "home_id": home_id,
                    "name": f"Tablette {t + 1}",
                    "enrolled_at": long_ago,
                    "online": online,
                    "last_seen": now - timedelta(minutes=rng.randint(0, 30 if online else 600)),
                    "app_version": "0.1.0",
                    "battery_percent": rng.randint(5, 100),
                    "charging": rng.random() < 0.5,
                    "free_storage_mb": rng.randint(200, 30_000),
                    "heartbeat_at": now - timedelta(minutes=rng.randint(0, 15)),
                    "created_at": long_ago,
                }
            )
        for r in range(per_home):
            resident_id = hexid()
            resident_rows.append(
                {
                    "id": resident_id,
                    "home_id": home_id,
                    "first_name": f"Résident{r:02d}",
                    "last_name": f"H{h:03d}",
                    "created_at": long_ago,
                }
            )
            lonely = rng.random() < 0.02  # no approved contact: no call at all
            approvals = []
            for c in range(2):
                contact_id = hexid()
                contact_rows.append(
                    {
                        "id": contact_id,
                        "home_id": home_id,
                        "display_name": f"Proche {c} de {r:02d}",
                        "created_at": long_ago,
                    }
                )
                approval_id = hexid()
                approval_rows.append(
                    {
                        "id": approval_id,
                        "resident_id": resident_id,
                        "contact_id": contact_id,
                        "status": "revoked" if lonely else "approved",
                        "policy": {},
                        "decided_at": long_ago,
                    }
                )
                approvals.append((contact_id, approval_id))
            silent_since = rng.randint(8, 60) if rng.random() < 0.05 else 0
            people.append(
                {
                    "id": resident_id,
                    "home_id": home_id,
                    "tablet": tablets[r % TABLETS_PER_HOME],
                    "approvals": approvals,
                    "rate": 0.0 if lonely else rng.uniform(0.3, 1.6),
                    "silent_since": silent_since,
                }
            )
    with database.session() as s:
        for model, rows in (
            (Home, home_rows),
            (Resident, resident_rows),
            (Contact, contact_rows),
            (Approval, approval_rows),
            (Tablet, tablet_rows),
        ):
            for i in range(0, len(rows), 5000):
                s.execute(insert(model), rows[i : i + 5000])
        one = accounts.add_staff(
            session=s,
            email="one-home@bench.example",
            name="Une Maison",
            password=PASSWORD,
            home_ids=[home_rows[0]["id"]],
            by="bench",
        )
        many = accounts.add_staff(
            session=s,
            email="every-home@bench.example",
            name="Tout le Département",
            password=PASSWORD,
            home_ids=[h["id"] for h in home_rows],
            by="bench",
        )
        staff = {"one_home": one.email, "many_homes": many.email}
    small_s = time.monotonic() - t0

    t1 = time.monotonic()
    raw = url.replace("postgresql+psycopg://", "postgresql://", 1)
    counts = {"usage_daily": 0, "calls": 0, "tablet_events": 0}
    with psycopg.connect(raw) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY usage_daily (home_id, resident_id, day, calls_made, calls_received, "
            "calls_missed, call_seconds, activities, activity_seconds, rolled_up_at) FROM STDIN"
        ) as usage_copy:
            details = _usage(rng, people, today, days, retention, now, usage_copy, counts)
        with cur.copy(
            "COPY calls (id, direction, resident_id, contact_id, approval_id, tablet_id, "
            "created_at, ring_at, answer_at, end_at, duration_s, outcome, ended_by) FROM STDIN"
        ) as call_copy:
            for row in details["calls"]:
                call_copy.write_row(row)
                counts["calls"] += 1
        with cur.copy(
            "COPY tablet_events (id, tablet_id, type, ts, data, received_at, received_by) "
            "FROM STDIN"
        ) as event_copy:
            for row in details["events"]:
                event_copy.write_row(row)
                counts["tablet_events"] += 1
            for row in _heartbeats(tablet_rows, now, retention):
                event_copy.write_row(row)
                counts["tablet_events"] += 1
        conn.commit()
    # usage_daily went in with COPY, past the roll-up: set what its upsert keeps with the rows
    # (each resident's last call day, read by the isolation alerts).
    with database.session() as s:
        rollup.refresh_last_call_days(s, None)
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    database.engine.dispose()
    return {
        "homes": homes,
        "residents": len(resident_rows),
        "contacts": len(contact_rows),
        "tablets": len(tablet_rows),
        **counts,
        "seed_s": round(time.monotonic() - t0, 1),
        "copy_s": round(time.monotonic() - t1, 1),
        "small_tables_s": round(small_s, 1),
        "staff": staff,
        "residents_of": {
            "one_home": [p["id"] for p in people if p["home_id"] == home_rows[0]["id"]],
            "many_homes": [p["id"] for p in people],
        },
    }


def _usage(
    rng: random.Random,
    people: list[dict[str, Any]],
    today: date,
    days: int,
    retention: int,
    now: datetime,
    copy: Any,
    counts: dict[str, int],
) -> dict[str, list[tuple[Any, ...]]]:
    """Write ``usage_daily`` for the past ``days`` (not today) and return the detail of the
    retention window and of today, drawn from the same figures."""
    zone = ZoneInfo(TZ)
    calls: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    first_detail = today - timedelta(days=retention)
    for person in people:
        rate, silent = person["rate"], person["silent_since"]
        for back in range(days, -1, -1):
            day = today - timedelta(days=back)
            quiet = silent and back < silent
            made = 0 if quiet else _count(rng, rate * 0.4)
            received = 0 if quiet else _count(rng, rate * 0.5)
            missed = _count(rng, 0.15) if rate else 0
            lengths = [rng.randint(60, 1200) for _ in range(made + received)]
            opened = {k: _count(rng, mean) for k, mean in ACTIVITIES if rate}
            opened = {k: v for k, v in opened.items() if v}
            seconds = {k: [rng.randint(30, 900) for _ in range(v)] for k, v in opened.items()}
            if not (made or received or missed or opened):
                continue
            if back > 0:
                copy.write_row(
                    (
                        person["home_id"],
                        person["id"],
                        day,
                        made,
                        received,
                        missed,
                        sum(lengths),
                        json.dumps(opened),
                        sum(sum(v) for v in seconds.values()),
                        now,
                    )
                )
                counts["usage_daily"] += 1
            if day < first_detail:
                continue
            start = datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
            span = (now - start).total_seconds() if back == 0 else 86_400.0
            kinds = (
                [("from_resident", True, n) for n in lengths[:made]]
                + [("to_resident", True, n) for n in lengths[made:]]
                + [("to_resident", False, 0)] * missed
            )
            for direction, answered, length in kinds:
                at = start + timedelta(seconds=rng.uniform(0, max(1.0, span - 1300)))
                contact_id, approval_id = person["approvals"][0]
                answer = at + timedelta(seconds=8) if answered else None
                calls.append(
                    (
                        hexid(),
                        direction,
                        person["id"],
                        contact_id,
                        approval_id,
                        person["tablet"],
                        at,
                        at,
                        answer,
                        (answer or at) + timedelta(seconds=length or 45),
                        length if answered else None,
                        "completed" if answered else "missed",
                        "tablet",
                    )
                )
            for key, lasts in seconds.items():
                for last in lasts:
                    at = start + timedelta(seconds=rng.uniform(0, max(1.0, span - 1000)))
                    for kind, extra in (
                        ("activity_started", {}),
                        ("activity_stopped", {"duration_s": last}),
                    ):
                        moment = at if kind == "activity_started" else at + timedelta(seconds=last)
                        data = {"event": kind, "activity": key, "resident_id": person["id"]}
                        events.append(
                            (
                                hexid(),
                                person["tablet"],
                                kind,
                                moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                                json.dumps({**data, **extra}),
                                moment,
                                "bench",
                            )
                        )
    return {"calls": calls, "events": events}


def _heartbeats(
    tablets: list[dict[str, Any]], now: datetime, retention: int
) -> Iterator[tuple[Any, ...]]:
    for tablet in tablets:
        moment = now - timedelta(days=retention)
        data = json.dumps(
            {
                "event": "heartbeat",
                "battery_percent": tablet["battery_percent"],
                "charging": tablet["charging"],
                "free_storage_mb": tablet["free_storage_mb"],
                "app_version": "0.1.0",
            }
        )
        while moment < now:
            yield (
                hexid(),
                tablet["id"],
                "heartbeat",
                moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                data,
                moment,
                "bench",
            )
            moment += timedelta(hours=1)


# -- the backend and the measurement ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_backend(url: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        LIENS_DATABASE_URL=url,
        LIENS_DATA_DIR=str(workdir / "server"),
        LIENS_SECRET_KEY="bench-secret-key-0123456789abcdef",
        LIENS_PUBLIC_URL=f"http://127.0.0.1:{port}",
        LIENS_EMBEDDED_MQTT_PORT=str(free_port()),
        LIENS_LOG_LEVEL="WARNING",
    )
    env.pop("LIENS_MQTT_URL", None)
    log = (workdir / "backend.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "liens", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Starting publishes every tablet's retained configuration first (docs/scale.md).
        deadline = time.monotonic() + 900
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the backend stopped: see {workdir / 'backend.log'}")
            try:
                if requests.get(f"{base}/staff/login", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the backend did not answer in 900 s")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def enrolled(url: str, value: bool) -> None:
    import psycopg

    raw = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(
            "UPDATE tablets SET enrolled_at = created_at"
            if value
            else "UPDATE tablets SET enrolled_at = NULL"
        )


def wait_until_idle(url: str, timeout: float = 600.0) -> float:
    """Wait until no other connection runs a query (the backend's jobs at start: roll-up,
    retention) for 3 s in a row; returns how long that took."""
    import psycopg

    raw = url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = raw.rsplit("/", 1)[1]
    t0 = time.monotonic()
    quiet_since: float | None = None
    with psycopg.connect(raw, autocommit=True) as conn:
        while time.monotonic() - t0 < timeout:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                "AND pid <> pg_backend_pid()",
                (name,),
            ).fetchone()
            if busy and busy[0] == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 3:
                    break
            else:
                quiet_since = None
            time.sleep(0.2)
    return time.monotonic() - t0


def login(base: str, email: str) -> requests.Session:
    http = requests.Session()
    form = http.get(f"{base}/staff/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, "no CSRF token on the login page"
    done = http.post(
        f"{base}/staff/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"},
        timeout=30,
    )
    if done.status_code != 200 or "/staff/login" in done.url:
        raise RuntimeError(f"login of {email} failed: {done.status_code}")
    return http


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 1),
    }


def measure(
    base: str, email: str, resident_ids: list[str], samples: int, warmup: int = 5
) -> dict[str, Any]:
    rng = random.Random(11)
    http = login(base, email)
    anonymous = requests.Session()
    timings: dict[str, list[float]] = {
        "login": [],
        "first_page": [],
        "resident": [],
        "resident_first_visit": [],
        "resident_again": [],
        "fleet": [],
    }
    sizes: dict[str, int] = {}
    seen: set[str] = set()

    def get(session: requests.Session, path: str, name: str, keep: bool) -> float:
        t = time.perf_counter()
        answer = session.get(base + path, timeout=60)
        elapsed = (time.perf_counter() - t) * 1000
        if answer.status_code != 200 or "/staff/login" in answer.url and name != "login":
            raise RuntimeError(f"{path}: {answer.status_code}")
        if keep:
            timings[name].append(elapsed)
            sizes[name] = len(answer.content)
        return elapsed

    # Interleaved, so that a noisy moment on the machine falls on every page alike.
    for i in range(warmup + samples):
        keep = i >= warmup
        get(anonymous, "/staff/login", "login", keep)
        get(http, "/staff/", "first_page", keep)
        # A resident's charts are cached by their figures (backend/dashboard/charts.py): the
        # first visit to a resident draws them (pygal), the same page again right after does not.
        resident = rng.choice(resident_ids)
        elapsed = get(http, f"/staff/residents/{resident}", "resident", keep)
        if keep and resident not in seen:
            timings["resident_first_visit"].append(elapsed)
        seen.add(resident)
        get(http, f"/staff/residents/{resident}", "resident_again", keep)
        get(http, "/staff/tablets", "fleet", keep)
    first = http.get(f"{base}/staff/", timeout=60).text
    alerts = re.search(r'<span class="big">(\d+)</span> résidents sans appel récent', first)
    return {
        "pages": {name: percentiles(values) for name, values in timings.items() if values},
        "bytes": sizes,
        "isolation_alerts": int(alerts.group(1)) if alerts else None,
    }


def existing(url: str) -> dict[str, Any]:
    """What :func:`seed` returns, read back from a database seeded by an earlier run."""
    from sqlalchemy import func, select

    from backend.db import Database
    from backend.models import Resident, Staff, Tablet, TabletEvent, UsageDaily, staff_homes

    database = Database(url)
    database.migrate()  # e.g. a new index, or 0010's last call days, since that run
    with database.session() as s:
        one = s.scalar(select(Staff).where(Staff.email == "one-home@bench.example"))
        assert one is not None, "not a database seeded by bench.dashboard"
        home_id = s.scalar(select(staff_homes.c.home_id).where(staff_homes.c.staff_id == one.id))
        result = {
            "residents": s.scalar(select(func.count()).select_from(Resident)),
            "tablets": s.scalar(select(func.count()).select_from(Tablet)),
            "usage_daily": s.scalar(select(func.count()).select_from(UsageDaily)),
            "tablet_events": s.scalar(select(func.count()).select_from(TabletEvent)),
            "staff": {"one_home": one.email, "many_homes": "every-home@bench.example"},
            "residents_of": {
                "one_home": list(s.scalars(select(Resident.id).where(Resident.home_id == home_id))),
                "many_homes": list(s.scalars(select(Resident.id))),
            },
        }
    database.engine.dispose()
    return result


@contextmanager
def reused_database(name: str) -> Iterator[str]:
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--homes", type=int, default=100)
    parser.add_argument("--residents", type=int, default=8000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--retention", type=int, default=90)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", metavar="DATABASE", help="measure a database kept by an earlier --keep run"
    )
    parser.add_argument(
        "--settle", type=float, default=70.0, help="seconds to let the backend's jobs run first"
    )
    args = parser.parse_args()
    result: dict[str, Any] = {"target_p95_ms": 150}
    databases = reused_database(args.reuse) if args.reuse else fresh_database(args.keep)
    with databases as url, tempfile.TemporaryDirectory() as tmp:
        if args.reuse:
            seeded = existing(url)
        else:
            seeded = seed(
                url,
                homes=args.homes,
                residents=args.residents,
                days=args.days,
                retention=args.retention,
            )
        result["seeded"] = {k: v for k, v in seeded.items() if k not in ("staff", "residents_of")}
        # A backend republishes every enrolled tablet's configuration before it serves a page,
        # one at a time: with 800 tablets serving 80 residents each that takes longer than
        # this bench (docs/scale.md). The tablets are marked enrolled once it is up: the
        # pages read them from the database at every request all the same.
        enrolled(url, False)
        t0 = time.monotonic()
        with running_backend(url, Path(tmp)) as base:
            result["backend_start_s"] = round(time.monotonic() - t0, 1)
            enrolled(url, True)
            # The roll-up and retention job first runs a minute after start
            # (backend/services/retention.py): let it finish before measuring.
            started = time.monotonic()
            time.sleep(args.settle)
            idle = wait_until_idle(url)
            result["backend_settled_s"] = round(time.monotonic() - started, 1)
            result["backend_busy_after_settle_s"] = round(idle, 1)
            # Other work on the machine shows in every figure, the floor (login) included.
            result["load_average_before"] = [round(x, 1) for x in os.getloadavg()]
            for who, email in seeded["staff"].items():
                result[who] = measure(base, email, seeded["residents_of"][who], args.samples)
            result["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
