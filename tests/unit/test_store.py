"""The tablet's local store: the cached configuration and the durable outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.store import OutboxItem, Store


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "kiosk.db"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    s = Store(path)
    yield s
    s.close()


def _item(n: int) -> OutboxItem:
    return OutboxItem(id=f"event-{n:04d}", topic="liens/v1/tablets/abc/events", payload=b"%d" % n)


def test_no_config_at_first(store: Store) -> None:
    assert store.load_config() is None


def test_cached_config_survives_reopening_the_file(path: Path) -> None:
    config = {"revision": 7, "residents": [{"id": "r1", "first_name": "Zoé", "contacts": []}]}
    first = Store(path)
    first.save_config({"revision": 6, "residents": []})
    first.save_config(config)
    first.close()
    again = Store(path)
    try:
        assert again.load_config() == config
    finally:
        again.close()


def test_clear_config(store: Store) -> None:
    store.save_config({"revision": 1, "residents": []})
    store.clear_config()
    assert store.load_config() is None


def test_outbox_keeps_order_until_acknowledged(store: Store) -> None:
    items = [_item(n) for n in range(5)]
    for item in items:
        store.enqueue(item)
    assert store.pending() == items
    assert store.outbox_size() == 5
    store.acknowledge(items[1].id)
    store.acknowledge(items[3].id)
    assert store.pending() == [items[0], items[2], items[4]]
    assert store.pending(limit=2) == [items[0], items[2]]


def test_enqueueing_the_same_id_twice_keeps_one_item(store: Store) -> None:
    store.enqueue(_item(1))
    store.enqueue(OutboxItem(id="event-0001", topic="other", payload=b"changed"))
    assert store.pending() == [_item(1)]


def test_acknowledging_an_unknown_id_is_harmless(store: Store) -> None:
    store.enqueue(_item(1))
    store.acknowledge("never-sent")
    assert store.outbox_size() == 1


def test_outbox_survives_reopening_the_file(path: Path) -> None:
    first = Store(path)
    for n in range(3):
        first.enqueue(_item(n))
    first.acknowledge(_item(0).id)
    first.close()
    again = Store(path)
    try:
        assert again.pending() == [_item(1), _item(2)]
        again.acknowledge(_item(1).id)
    finally:
        again.close()
    third = Store(path)
    try:
        assert third.pending() == [_item(2)]
    finally:
        third.close()
