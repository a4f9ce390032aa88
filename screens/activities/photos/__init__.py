"""Family photos: the photos relatives sent, one at a time, with big arrows and a heart."""

from __future__ import annotations

from pathlib import Path

from screens.activities import Activity, lazy_screen

KV_FILE = Path(__file__).with_name("slideshow.kv")

ACTIVITY = Activity(
    key="photos",
    name="Family photos",
    icon="image-multiple",
    audiences=frozenset({"senior", "youth"}),
    screen=lazy_screen("screens.activities.photos.slideshow", "SlideshowScreen"),
    kv_file=KV_FILE,
    order=10,
)
