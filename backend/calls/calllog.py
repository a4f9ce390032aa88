"""The call log (``calls`` table) converges from whichever side saw a call end.

Two witnesses close a call's row:

- the **hub**, in memory, when it ends the call (:func:`backend.calls.checks.log_ended`): it saw
  both sides, so its account (outcome, end, duration, who ended it) stands;
- the **tablet**, whose engine records a ``call_ended`` event (``call_id``, ``reason``,
  ``duration_s`` from the media connecting to the end) in its durable outbox: it reaches the
  backend even when the backend was down when the call ended. :func:`on_call_event` is the
  ingest handler of that event: it closes a row still open with the tablet's reason and
  duration, and never makes a row the hub closed worse.

A backend killed during a call leaves the row open; :func:`close_calls_left_open`, run once at
start, closes the rows no live replica holds, from the tablet's stored ``call_ended`` when there
is one, else as ``server_restart`` at the last moment known (a later ``call_ended`` then
replaces that guess with the tablet's account). Every step is idempotent: redelivering an event
changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.calls.routing import ALIVE_S
from backend.models import BackendReplica, Call, CallRoute, TabletEvent, utcnow
from backend.services.tablets import tablets_serving
from kiosk.calls.model import MAX_CALL_ID, EndedBy, EndReason, Outcome, as_end_reason, outcome_for

log = logging.getLogger(__name__)

CALL_ENDED_EVENT = "call_ended"
# The tablet events with an effect on the call log (the ingest table's keys).
CALL_EVENTS: frozenset[str] = frozenset({CALL_ENDED_EVENT})
# A call's duration the tablet may report (a day): anything longer is not a call.
MAX_DURATION_S = 24 * 3600


class BadCallEvent(ValueError):
    """A ``call_ended`` event that cannot be read; the text says why."""


@dataclass(frozen=True)
class TabletEnd:
    """How a tablet saw a call end (its ``call_ended`` event)."""

    call_id: str
    reason: EndReason
    duration_s: int
    at: datetime  # the event's time (the tablet's clock), aware


def read_tablet_end(data: dict[str, Any], ts: str) -> TabletEnd:
    """The ``call_ended`` event's fields; :class:`BadCallEvent` when they are not readable."""
    if not isinstance(data, dict):
        raise BadCallEvent("the event's data is not an object")
    call_id = data.get("call_id")
    if not isinstance(call_id, str) or not call_id or len(call_id) > MAX_CALL_ID:
        raise BadCallEvent(f"'call_id' must be a non-empty string of at most {MAX_CALL_ID}")
    reason = as_end_reason(data.get("reason"))
    if reason is None:
        raise BadCallEvent(f"'reason' must be one of {sorted(EndReason)}")
    duration = data.get("duration_s")
    if (
        not isinstance(duration, int)
        or isinstance(duration, bool)
        or not 0 <= duration <= MAX_DURATION_S
    ):
        raise BadCallEvent(f"'duration_s' must be an integer from 0 to {MAX_DURATION_S}")
    try:
        at = datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        raise BadCallEvent(f"the event's time {ts!r} is not ISO 8601") from None
    if at.tzinfo is None:
        raise BadCallEvent(f"the event's time {ts!r} has no time zone")
    return TabletEnd(call_id=call_id, reason=reason, duration_s=duration, at=at)


def on_call_event(
    session: Session,
    *,
    tablet_id: str,
    event_id: str,
    event: str,
    ts: str,
    data: dict[str, Any],
) -> None:
    """The ingest handler of the tablet's call events (:data:`CALL_EVENTS`).

    Called in the ingest transaction, after the event's row was added. Idempotent; never raises
    for bad data (logs it and returns: the event itself stays stored).
    """
    if event not in CALL_EVENTS:
        return
    try:
        end = read_tablet_end(data, ts)
    except BadCallEvent as exc:
        log.warning("call event %s from tablet %s not applied: %s", event_id, tablet_id, exc)
        return
    try:
        close_from_tablet(session, tablet_id=tablet_id, end=end)
    except Exception:
        log.exception("call event %s from tablet %s not applied", event_id, tablet_id)


def close_from_tablet(session: Session, *, tablet_id: str, end: TabletEnd) -> bool:
    """Close the call's row with the tablet's account, if that makes it better; True if it did.

    A row still open, or closed only as ``server_restart``, takes the tablet's reason, duration
    and end; a row the hub closed keeps the hub's account. Only a party of the call may close it:
    the tablet that took it, or (before anyone took it) a tablet serving the resident.
    """
    row = session.get(Call, end.call_id)
    if row is None:
        log.info("call_ended for %s, which the call log does not know", end.call_id)
        return False
    if row.tablet_id is not None and row.tablet_id != tablet_id:
        log.warning("tablet %s reported the end of call %s of another tablet", tablet_id, row.id)
        return False
    if row.tablet_id is None and tablet_id not in tablets_serving(session, row.resident_id):
        log.warning("tablet %s reported the end of call %s it was no party of", tablet_id, row.id)
        return False
    if row.end_at is not None and row.outcome != Outcome.SERVER_RESTART:
        return False  # the hub saw it end: its account stands (and a redelivery changes nothing)
    at = min(max(end.at, row.created_at), max(utcnow(), row.created_at))
    answered = end.duration_s > 0 or row.answer_at is not None
    if end.duration_s > 0 and row.answer_at is None:
        row.answer_at = max(row.created_at, at - timedelta(seconds=end.duration_s))
    row.end_at = at
    row.duration_s = end.duration_s if answered else None
    row.outcome = outcome_for(end.reason, answered=answered)
    row.ended_by = None  # the tablet's event does not say which side ended it
    row.tablet_id = tablet_id
    log.info(
        "call %s closed from tablet %s's account: %s, %s s",
        row.id,
        tablet_id,
        row.outcome,
        row.duration_s,
    )
    return True


def close_calls_left_open(session: Session, *, replica_id: str | None = None) -> int:
    """Close the rows of calls that no live replica holds (a backend killed during a call).

    Run once when the backend starts, before it takes calls. A row another live replica routes
    (``call_routes``, docs/scale.md) is left to it; ``replica_id`` is this replica, whose own
    routes are an earlier run's (also fine to call after ``Router.start()``, which drops them).
    Each row is closed from the tablet's stored ``call_ended`` when there is one, else with
    outcome ``server_restart`` at the last moment known. Returns how many rows were closed.
    """
    since = utcnow() - timedelta(seconds=ALIVE_S)
    alive = set(session.scalars(select(BackendReplica.id).where(BackendReplica.last_seen >= since)))
    alive.discard(replica_id or "")
    held = set(session.scalars(select(CallRoute.call_id).where(CallRoute.replica_id.in_(alive))))
    closed = 0
    for row in list(session.scalars(select(Call).where(Call.end_at.is_(None)))):
        if row.id in held:
            continue
        if _close_from_stored_event(session, row):
            closed += 1
            continue
        known = [t for t in (row.created_at, row.ring_at, row.answer_at) if t is not None]
        row.end_at = max(known)
        row.duration_s = 0 if row.answer_at is not None else None
        row.outcome = Outcome.SERVER_RESTART
        row.ended_by = EndedBy.BACKEND
        closed += 1
        log.warning("call %s was left open by a stopped backend: closed as server_restart", row.id)
    return closed


def _close_from_stored_event(session: Session, row: Call) -> bool:
    events = session.scalars(
        select(TabletEvent)
        .where(
            TabletEvent.type == CALL_ENDED_EVENT,
            TabletEvent.data["call_id"].as_string() == row.id,
        )
        .order_by(TabletEvent.received_at)
    )
    for stored in events:
        try:
            end = read_tablet_end(stored.data, stored.ts)
        except BadCallEvent:
            continue
        if close_from_tablet(session, tablet_id=stored.tablet_id, end=end):
            return True
    return False
