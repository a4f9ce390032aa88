"""Family photos: the photos relatives sent, one at a time, with big arrows and a heart."""

from __future__ import annotations

from screens.activities import Activity
from screens.activities.photos.slideshow import KV_FILE, SlideshowScreen

ACTIVITY = Activity(
    key="photos",
    name="Family photos",
    icon="image-multiple",
    audiences=frozenset({"senior", "youth"}),
    screen=SlideshowScreen,
    kv_file=KV_FILE,
    order=10,
)
