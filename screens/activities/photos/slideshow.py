"""The slideshow: one family photo at a time, its caption in large text, big arrows, a heart.

No swiping: a big arrow on each side (the last photo leads back to the first). A photo the
resident had not seen yet wears a "Nouveau" badge while it is on screen (and is remembered as
seen from then on). "J'aime" sends one heart per photo; the button then says calmly that the
relative will know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from kiosk.i18n import _
from screens.activities.base import ActivityContext, ActivityScreen

KV_FILE = Path(__file__).with_suffix(".kv")


class SlideshowScreen(ActivityScreen):
    """Photos from the context (``PhotoCache.shown``): newest first."""

    index = NumericProperty(0)
    count = NumericProperty(0)
    source = StringProperty("")
    caption = StringProperty("")
    sender_line = StringProperty("")
    position = StringProperty("")
    is_new = BooleanProperty(False)
    hearted = BooleanProperty(False)
    heart_text = StringProperty("")
    empty_text = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        self.photos: list[dict[str, Any]] = []
        self.context: ActivityContext | None = None
        self.seen: set[str] = set()
        self.hearts = 0
        super().__init__(**kwargs)

    def begin(self, context: ActivityContext) -> None:
        super().begin(context)
        self.context = context
        self.photos = [dict(p) for p in context.photos]
        self.count = len(self.photos)
        self.seen = set()
        self.hearts = 0
        self.index = 0
        self.show()

    def figures(self) -> dict[str, Any]:
        return {"photos": self.count, "photos_seen": len(self.seen), "hearts": self.hearts}

    def refresh_texts(self) -> None:
        self.show()

    def show(self) -> None:
        if not self.photos:
            self.source = self.caption = self.sender_line = self.position = ""
            self.is_new = self.hearted = False
            self.empty_text = _("No photos yet. Your family can send some from their Liens page.")
            return
        self.empty_text = ""
        photo = self.photos[int(self.index) % len(self.photos)]
        self.source = str(photo["path"])
        self.caption = str(photo.get("caption") or "")
        sender = str(photo.get("sender") or "")
        self.sender_line = _("From {sender}").format(sender=sender) if sender else ""
        self.position = _("{current} of {total}").format(
            current=int(self.index) + 1, total=len(self.photos)
        )
        self.is_new = bool(photo.get("new"))
        self.hearted = bool(photo.get("hearted"))
        self._heart_texts(photo)
        if photo["id"] not in self.seen:
            self.seen.add(photo["id"])
            if self.context is not None:
                self.context.mark_seen(str(photo["id"]))

    def _heart_texts(self, photo: dict[str, Any]) -> None:
        sender = str(photo.get("sender") or "")
        if not self.hearted:
            self.heart_text = _("I like it")
        elif sender:
            self.heart_text = _("{sender} will know you liked it").format(sender=sender)
        else:
            self.heart_text = _("Your family will know you liked it")

    def next(self) -> None:
        if self.photos:
            self.index = (int(self.index) + 1) % len(self.photos)
            self.show()

    def previous(self) -> None:
        if self.photos:
            self.index = (int(self.index) - 1) % len(self.photos)
            self.show()

    def heart(self) -> None:
        if not self.photos or self.hearted or self.context is None:
            return
        photo = self.photos[int(self.index) % len(self.photos)]
        if self.context.send_heart(str(photo["id"])):
            self.hearts += 1
        photo["hearted"] = True  # sent now, or already sent before: either way, said so
        self.hearted = True
        self._heart_texts(photo)
