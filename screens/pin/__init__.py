"""A child's own PIN keypad, before their home opens (see ``kiosk.session``)."""
