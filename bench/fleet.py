"""A fleet of simulated tablets against one backend, real Mosquitto 2 and real PostgreSQL.

    python -m bench.fleet --tablets 1000 [--events-per-tablet 5] [--samples 30]

Prints one JSON object:

- ``tablets_connected``: simulated tablets connected and subscribed, each with its own dynsec
  account and ACL (as an enrolled tablet), 10 tablets per home;
- ``events_per_s``: events ingested into PostgreSQL per second (publish of the first event → the
  last one stored), ``ingest_lag_ms`` p50/p99: envelope time → row written;
- ``propagation_ms`` p50/p99: a staff approval (service call + republishing the configuration of
  the home's tablets) → each of those tablets holds the new configuration, with every tablet of
  the fleet connected;
- ``mosquitto_floor_ms`` p50/p99: raw publish → receive through the same broker, same run, same
  simulated clients (the lower bound of any propagation).

The tablets are a minimal MQTT 3.1.1 client on asyncio (CONNECT with credentials, SUBSCRIBE to
their own config/cmd/signal topics, QoS 1 publish and PUBACK) in one process, so that thousands
fit on a small machine; the backend is the real ``Backend`` (bridge, MQTT 5 shared
subscription, PostgreSQL) in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_HOME = 10


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


# -- a minimal MQTT 3.1.1 client on asyncio ----------------------------------------------------


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    out = bytearray([first])
    n = len(body)
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


class SimTablet:
    """One tablet's connection: config/cmd/signal in, events out."""

    def __init__(self, tablet_id: str, password: str, on_message: Any) -> None:
        self.tablet_id, self.password = tablet_id, password
        self.on_message = on_message
        self.writer: asyncio.StreamWriter | None = None
        self.next_id = 1
        self.acks: dict[int, asyncio.Future[None]] = {}
        self.ready = asyncio.Event()

    async def run(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        self.writer = writer
        body = _str("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 120)
        body += _str(self.tablet_id) + _str(self.tablet_id) + _str(self.password)
        writer.write(_packet(0x10, body))
        topics = [f"liens/v1/tablets/{self.tablet_id}/{c}" for c in ("config", "cmd", "signal/in")]
        sub = struct.pack("!H", 1) + b"".join(_str(t) + b"\x01" for t in topics)
        writer.write(_packet(0x82, sub))
        self.next_id = 2
        while True:
            head = await reader.readexactly(1)
            length, mult = 0, 1
            while True:
                b = (await reader.readexactly(1))[0]
                length += (b & 127) * mult
                mult *= 128
                if not b & 128:
                    break
            data = await reader.readexactly(length) if length else b""
            kind = head[0] >> 4
            if kind == 2 and data[1] != 0:
                raise RuntimeError(f"{self.tablet_id} refused: {data[1]}")
            if kind == 9:
                self.ready.set()
            elif kind == 4:
                fut = self.acks.pop(struct.unpack("!H", data[:2])[0], None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif kind == 3:
                qos = (head[0] >> 1) & 3
                tlen = struct.unpack("!H", data[:2])[0]
                topic = data[2 : 2 + tlen].decode()
                pos = 2 + tlen
                if qos:
                    pid = data[pos : pos + 2]
                    pos += 2
                    writer.write(_packet(0x40, pid))
                self.on_message(self, topic, data[pos:])

    async def publish(self, topic: str, payload: bytes) -> None:
        assert self.writer is not None
        pid = self.next_id
        self.next_id = self.next_id % 65535 + 1
        fut = asyncio.get_running_loop().create_future()
        self.acks[pid] = fut
        self.writer.write(_packet(0x32, _str(topic) + struct.pack("!H", pid) + payload))
        await fut


# -- setup -------------------------------------------------------------------------------------


def seed(database_url: str, tablets: int) -> list[tuple[str, str, str]]:
    """Homes of ten tablets, one resident each and an approved relative; (home, resident, tid)."""
    from sqlalchemy import insert

    from backend.db import Database
    from backend.models import Tablet, utcnow
    from backend.services import directory

    db = Database(database_url)
    db.migrate()
    out = []
    homes = max(1, tablets // PER_HOME)
    with db.session() as s:
        for h in range(homes):
            home = directory.add_home(session=s, name=f"Home {h}", by="bench")
            resident = directory.add_resident(
                session=s, home_id=home.id, first_name="Marcel", by="bench"
            )
            contact = directory.add_contact(
                session=s, home_id=home.id, display_name="Julie", by="bench"
            )
            directory.approve(session=s, resident_id=resident.id, contact_id=contact.id, by="bench")
            count = PER_HOME if h < homes - 1 else tablets - PER_HOME * (homes - 1)
            for _ in range(count):
                tid = "t" + uuid.uuid4().hex[:12]
                out.append((home.id, resident.id, tid))
        s.flush()
        now = utcnow()
        s.execute(
            insert(Tablet),
            [
                {"id": tid, "home_id": home, "name": tid, "enrolled_at": now, "password_hash": "-"}
                for home, _, tid in out
            ],
        )
    db.engine.dispose()
    return out


def register(mosquitto_dir: Path, tablet_ids: list[str]) -> None:
    """Each tablet's dynsec account and role, written into dynsec's file before Mosquitto starts.

    The same clients, roles and ACLs as enrolment creates through ``$CONTROL`` (and the same
    PBKDF2-SHA512 password hashes), without one file rewrite per command: with 10,000 tablets
    that would take the bench's whole time.
    """
    import base64
    import hashlib
    import shutil
    import subprocess

    from backend.broker.dynsec import tablet_acls, tablet_role
    from tests.fixtures.mosquitto import ADMIN_PASSWORD, ADMIN_USERNAME

    mosquitto_dir.mkdir(parents=True, exist_ok=True)
    path = mosquitto_dir / "dynamic-security.json"
    ctrl = shutil.which("mosquitto_ctrl") or "mosquitto_ctrl"
    subprocess.run(
        [ctrl, "dynsec", "init", str(path), ADMIN_USERNAME, ADMIN_PASSWORD],
        check=True,
        capture_output=True,
    )
    config = json.loads(path.read_text())
    for tid in tablet_ids:
        salt = os.urandom(12)
        digest = hashlib.pbkdf2_hmac("sha512", ("pw-" + tid).encode(), salt, 101, 64)
        config["roles"].append({"rolename": tablet_role(tid), "acls": tablet_acls(tid)})
        config["clients"].append(
            {
                "username": tid,
                "clientid": tid,  # bound to its client id, as enrolment does
                "password": base64.b64encode(digest).decode(),
                "salt": base64.b64encode(salt).decode(),
                "iterations": 101,
                "roles": [{"rolename": tablet_role(tid)}],
            }
        )
    path.write_text(json.dumps(config))


# -- the run -----------------------------------------------------------------------------------


def run(tablets: int, events_per_tablet: int, samples: int, workdir: Path) -> dict[str, Any]:

    from backend.runtime import Backend
    from backend.settings import Settings
    from tests.fixtures.mosquitto import free_port, running_mosquitto
    from tests.replicas import fresh_postgres

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result: dict[str, Any] = {"tablets": tablets}
    with fresh_postgres() as url:
        t0 = time.monotonic()
        fleet = seed(url, tablets)
        register(workdir / "mosquitto", [tid for _, _, tid in fleet])
        result["setup_s"] = round(time.monotonic() - t0, 1)
        with running_mosquitto(workdir / "mosquitto") as broker:
            settings = Settings(
                data_dir=workdir / "server",
                secret_key="bench-secret-0123456789abcdef0123",
                database_url=url,
                mqtt_url=broker.url,
                port=free_port(),
                replica_id="bench",
            )
            backend = Backend(settings)
            t0 = time.monotonic()
            backend.start()  # publishes every tablet's retained configuration
            result["backend_start_s"] = round(time.monotonic() - t0, 1)
            try:
                result.update(
                    asyncio.run(_fleet(broker, backend, url, fleet, events_per_tablet, samples))
                )
            finally:
                backend.stop()
    return result


async def _fleet(
    broker: Any, backend: Any, url: str, fleet: list[tuple[str, str, str]], per: int, samples: int
) -> dict[str, Any]:
    from sqlalchemy import text

    from backend.services import directory
    from backend.services import tablets as tablet_service
    from kiosk.protocol import Envelope, MessageType

    configs: dict[str, int] = {}
    waiting: dict[str, tuple[int, float, asyncio.Future[float]]] = {}
    floor: dict[str, tuple[float, asyncio.Future[float]]] = {}
    loop = asyncio.get_running_loop()

    def on_message(sim: SimTablet, topic: str, payload: bytes) -> None:
        now = time.monotonic()
        if topic.endswith("/config") and payload:
            revision = json.loads(payload)["data"]["revision"]
            configs[sim.tablet_id] = revision
            w = waiting.get(sim.tablet_id)
            if w is not None and revision >= w[0] and not w[2].done():
                w[2].set_result((now - w[1]) * 1000)
        elif topic.endswith("/cmd"):
            f = floor.pop(sim.tablet_id, None)
            if f is not None and not f[1].done():
                f[1].set_result((now - f[0]) * 1000)

    sims = [SimTablet(tid, "pw-" + tid, on_message) for _, _, tid in fleet]
    tasks = []
    t0 = time.monotonic()
    for i in range(0, len(sims), 200):  # connect in waves, as a fleet does after an outage
        for sim in sims[i : i + 200]:
            tasks.append(asyncio.ensure_future(sim.run(broker.host, broker.port)))
        await asyncio.sleep(0.05)
    done, _ = await asyncio.wait([asyncio.ensure_future(s.ready.wait()) for s in sims], timeout=120)
    connected = sum(1 for s in sims if s.ready.is_set())
    out: dict[str, Any] = {
        "tablets_connected": connected,
        "connect_s": round(time.monotonic() - t0, 1),
    }
    await asyncio.sleep(2)

    # The floor: raw publish -> receive through Mosquitto, from the backend's own client.
    lat: list[float] = []
    for sim in sims[:: max(1, len(sims) // samples)][:samples]:
        fut = loop.create_future()
        floor[sim.tablet_id] = (time.monotonic(), fut)
        await asyncio.to_thread(
            backend.bridge.publish, f"liens/v1/tablets/{sim.tablet_id}/cmd", b"{}"
        )
        with contextlib.suppress(TimeoutError):
            lat.append(await asyncio.wait_for(fut, 5))
    out["mosquitto_floor_ms"] = {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "n": len(lat)}

    # Approval -> every tablet of the home holds the new configuration.
    homes: dict[str, tuple[str, list[str]]] = {}
    for home, resident, tid in fleet:
        homes.setdefault(home, (resident, []))[1].append(tid)
    prop: list[float] = []
    for n, (home, (resident, tids)) in enumerate(list(homes.items())[:samples]):

        def approve(home: str = home, resident: str = resident, n: int = n) -> list[str]:
            with backend.db.session() as s:
                contact = directory.add_contact(
                    session=s, home_id=home, display_name=f"Paul {n}", by="bench"
                )
                directory.approve(
                    session=s, resident_id=resident, contact_id=contact.id, by="bench"
                )
                ids = tablet_service.tablets_serving(s, resident)
                tablet_service.bump_revisions(s, ids)
            backend.publish_configs(ids)
            return ids

        start = time.monotonic()
        futs = []
        for tid in tids:
            fut = loop.create_future()
            waiting[tid] = (configs.get(tid, 0) + 1, start, fut)
            futs.append(fut)
        await asyncio.to_thread(approve)
        for fut in futs:
            with contextlib.suppress(TimeoutError):
                prop.append(await asyncio.wait_for(fut, 10))
    out["propagation_ms"] = {"p50": pct(prop, 0.5), "p99": pct(prop, 0.99), "n": len(prop)}

    # Events: every tablet sends ``per`` events at once.
    total = per * connected
    t0 = time.monotonic()

    async def send(sim: SimTablet) -> None:
        for k in range(per):
            env = Envelope(type=MessageType.EVENT, data={"event": "heartbeat", "battery": k})
            await sim.publish(f"liens/v1/tablets/{sim.tablet_id}/events", env.to_bytes())

    await asyncio.gather(*(send(s) for s in sims if s.ready.is_set()))
    published_s = time.monotonic() - t0

    def count() -> int:
        with backend.db.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM tablet_events")).scalar_one())

    stored = 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        stored = await asyncio.to_thread(count)
        if stored >= total:
            break
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - t0

    def lags() -> list[float]:
        with backend.db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT extract(epoch FROM received_at - ts::timestamptz) * 1000 "
                    "FROM tablet_events"
                )
            ).scalars()
            return [float(r) for r in rows]

    lag = await asyncio.to_thread(lags)
    out.update(
        events=total,
        events_stored=stored,
        events_publish_s=round(published_s, 2),
        events_per_s=round(stored / elapsed, 1),
        ingest_lag_ms={"p50": pct(lag, 0.5), "p99": pct(lag, 0.99)},
    )
    for task in tasks:
        task.cancel()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tablets", type=int, default=1000)
    parser.add_argument("--events-per-tablet", type=int, default=5)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=os.environ.get("LIENS_LOG_LEVEL", "WARNING"))
    with tempfile.TemporaryDirectory(prefix="liens-fleet-") as tmp:
        result = run(args.tablets, args.events_per_tablet, args.samples, Path(tmp))
    result["machine"] = {"cpus": os.cpu_count()}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
