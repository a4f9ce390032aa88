"""A contact as a big tile: the photo, or a circle with initials, and the name under it."""

from __future__ import annotations

from kivy.properties import StringProperty
from kivymd.uix.card import MDCard


class BigTile(MDCard):
    """One approved contact on the home screen; a single tap dispatches ``on_release``.

    Fed from a ``kiosk.viewmodel.ContactTile`` dict: ``approval_id``, ``name``, ``relation``,
    ``initials``, ``photo`` (a local file, "" for the initials placeholder).
    """

    approval_id = StringProperty("")
    resident_id = StringProperty("")
    contact_id = StringProperty("")
    name = StringProperty("")
    relation = StringProperty("")
    initials = StringProperty("")
    photo = StringProperty("")
