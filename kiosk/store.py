"""The tablet's local store (SQLite): the last configuration, and the durable outbox.

The configuration is cached so that the tablet shows its contacts, and enforces its policies,
when it starts offline. The outbox keeps every event until the broker acknowledges it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS config (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    revision INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL DEFAULT (julianday('now'))
);
"""


@dataclass(frozen=True)
class OutboxItem:
    id: str
    topic: str
    payload: bytes


class Store:
    """One SQLite file, shared by the paho thread and the UI thread behind a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- configuration -------------------------------------------------------------------------

    def load_config(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM config WHERE singleton = 1").fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def save_config(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO config (singleton, revision, data) VALUES (1, ?, ?) "
                "ON CONFLICT (singleton) DO UPDATE SET revision = excluded.revision, "
                "data = excluded.data",
                (int(data.get("revision", 0)), json.dumps(data)),
            )

    def clear_config(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM config")

    # -- outbox --------------------------------------------------------------------------------

    def enqueue(self, item: OutboxItem) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (id, topic, payload) VALUES (?, ?, ?)",
                (item.id, item.topic, item.payload),
            )

    def pending(self, limit: int = 1000) -> list[OutboxItem]:
        with self._lock:
            # rowid, not the wall clock: a tablet without a real-time clock may boot in the past.
            rows = self._db.execute(
                "SELECT id, topic, payload FROM outbox ORDER BY rowid LIMIT ?", (limit,)
            ).fetchall()
        return [OutboxItem(r[0], r[1], bytes(r[2])) for r in rows]

    def acknowledge(self, item_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def outbox_size(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
