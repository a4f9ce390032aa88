""" "Demander un contact": a child picks who they would like to call; staff decide.

``RequestFlow`` adds the two screens (the relation's big buttons, then a calm confirmation) to
the app's screen manager and routes the home screen's ``on_request_contact`` through them to
``core.request_contact``.
"""

from screens.request.choose import KV_FILE as CHOOSE_KV_FILE
from screens.request.flow import RequestFlow
from screens.request.sent import KV_FILE as SENT_KV_FILE

KV_FILES = (CHOOSE_KV_FILE, SENT_KV_FILE)

__all__ = ["KV_FILES", "RequestFlow"]
