"""The memory game: pairs of big cards, family photos when there are enough, no timer."""

from __future__ import annotations

from pathlib import Path

from screens.activities import Activity, lazy_screen

KV_FILE = Path(__file__).with_name("memory.kv")

ACTIVITY = Activity(
    key="memory",
    name="Pairs game",
    icon="cards-outline",
    audiences=frozenset({"senior", "youth"}),
    screen=lazy_screen("screens.activities.memory.memory", "MemoryScreen"),
    kv_file=KV_FILE,
    order=20,
)
