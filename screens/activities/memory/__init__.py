"""The memory game: pairs of big cards, family photos when there are enough, no timer."""

from __future__ import annotations

from screens.activities import Activity
from screens.activities.memory.memory import KV_FILE, MemoryScreen

ACTIVITY = Activity(
    key="memory",
    name="Pairs game",
    icon="cards-outline",
    audiences=frozenset({"senior", "youth"}),
    screen=MemoryScreen,
    kv_file=KV_FILE,
    order=20,
)
