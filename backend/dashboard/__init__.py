"""The staff dashboard (``/staff/…``): server-rendered pages with htmx for in-place actions.

Every page needs a logged-in member of staff and shows only their homes; every state-changing
route is a POST checked against the session's CSRF token. Changes go through the services (so
they are audited), then reach the tablets at once (``Backend.publish_configs``).
"""

from fastapi import APIRouter

from backend.dashboard import (
    approvals,
    audit,
    fleet,
    homes,
    overview,
    photos,
    portraits,
    privacy,
    queue,
    usage,
)

router = APIRouter()
for module in (overview, homes, approvals, queue, photos, portraits, audit, usage, fleet, privacy):
    router.include_router(module.router)

__all__ = ["router"]
