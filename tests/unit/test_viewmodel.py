"""The screens' view-model: plain dicts computed from a configuration, without any window."""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.viewmodel import contact_tiles, initials, residents


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Marie-Claire Dupont", "MD"),
        ("Marie-Claire", "MC"),
        ("julie", "J"),
        ("  Jean   de la Fontaine ", "JF"),
        ("Élodie Ça", "ÉÇ"),
        ("", "?"),
        ("   ", "?"),
        ("-", "?"),
    ],
)
def test_initials(name: str, expected: str) -> None:
    assert initials(name) == expected


def _contact(cid: str, approval: str, name: str, relation: str = "") -> dict[str, Any]:
    return {"id": cid, "approval_id": approval, "display_name": name, "relation": relation}


CONFIG: dict[str, Any] = {
    "revision": 3,
    "residents": [
        {
            "id": "r1",
            "first_name": "Marcel",
            "kind": "senior",
            "contacts": [
                _contact("c1", "a1", "Julie Martin", "petite-fille"),
                _contact("c2", "a2", "Thomas"),
            ],
        },
        {
            "id": "r2",
            "first_name": "Odette",
            "kind": "youth",
            "contacts": [
                _contact("c1", "a3", "Julie Martin", "nièce"),
                _contact("c2", "a2", "Thomas"),  # the same approval sent twice
            ],
        },
        {"id": "r3", "first_name": "Lucien"},  # no contacts yet
    ],
}


def test_contact_tiles_of_one_resident() -> None:
    tiles = contact_tiles(CONFIG, "r1")
    assert [t["name"] for t in tiles] == ["Julie Martin", "Thomas"]
    assert tiles[0] == {
        "approval_id": "a1",
        "contact_id": "c1",
        "resident_id": "r1",
        "name": "Julie Martin",
        "relation": "petite-fille",
        "initials": "JM",
        "photo": "",
    }
    assert [t["approval_id"] for t in contact_tiles(CONFIG, "r2")] == ["a3", "a2"]


def test_contact_tiles_of_every_resident_keep_each_approval_once() -> None:
    tiles = contact_tiles(CONFIG)
    assert [t["approval_id"] for t in tiles] == ["a1", "a2", "a3"]
    assert [t["resident_id"] for t in tiles] == ["r1", "r1", "r2"]


def test_contact_tiles_use_cached_photos_by_contact_id() -> None:
    tiles = contact_tiles(CONFIG, "r1", photo_paths={"c2": "/cache/c2.jpg", "zz": "/x.jpg"})
    assert [t["photo"] for t in tiles] == ["", "/cache/c2.jpg"]


@pytest.mark.parametrize("resident_id", ["r3", "unknown"])
def test_contact_tiles_empty_for_a_resident_without_contacts(resident_id: str) -> None:
    assert contact_tiles(CONFIG, resident_id) == []


@pytest.mark.parametrize("config", [None, {}, {"revision": 1, "residents": []}])
def test_no_configuration_means_no_tiles_and_no_residents(config: dict[str, Any] | None) -> None:
    assert contact_tiles(config) == []
    assert residents(config) == []


def test_residents_in_the_order_sent() -> None:
    assert residents(CONFIG) == [
        {"resident_id": "r1", "name": "Marcel", "kind": "senior", "initials": "M"},
        {"resident_id": "r2", "name": "Odette", "kind": "youth", "initials": "O"},
        {"resident_id": "r3", "name": "Lucien", "kind": "senior", "initials": "L"},
    ]


def test_a_resident_without_a_first_name_gets_a_placeholder() -> None:
    assert residents({"residents": [{"id": "r9"}]}) == [
        {"resident_id": "r9", "name": "", "kind": "senior", "initials": "?"}
    ]
