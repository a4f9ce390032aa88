"""What a staff decision sets in motion once it is committed: :class:`Consequences`.

Every service function that changes what a tablet shows, who may call, or who may connect returns
one :class:`Consequences` (merged with ``|`` when a change does several things). The caller
commits, then hands it to the one apply step, :func:`backend.decisions.apply` (the dashboard, the
API) or :func:`backend.decisions.apply_from_another_process` (the ``liens admin`` CLI), which
republishes, ends calls, closes pages and removes retired tablets from the broker. Nothing here
talks to the broker: these functions only read the database and bump configuration revisions in
the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Staff, StaffRole, Tablet
from backend.services import tablets as tablet_service

# Why the hub ends a call a decision no longer allows (the call log's outcome, the tablet's text).
POLICY = "policy"


@dataclass(frozen=True)
class EndCalls:
    """The calls to end: those matching any one of the ids given (at least one)."""

    call_id: str | None = None
    approval_id: str | None = None
    resident_id: str | None = None
    contact_id: str | None = None
    reason: str = POLICY

    def __post_init__(self) -> None:
        if not any(self.filters().values()):
            raise ValueError("EndCalls needs a call, approval, resident or contact id")

    def filters(self) -> dict[str, str | None]:
        return {
            "call_id": self.call_id,
            "approval_id": self.approval_id,
            "resident_id": self.resident_id,
            "contact_id": self.contact_id,
        }


@dataclass(frozen=True)
class TabletCommand:
    """A staff command for one tablet (``tablets/{tid}/cmd``), e.g. ``reset_pin_lock``."""

    tablet_id: str
    command: str
    data: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Consequences:
    """Everything that must happen after a decision's commit, on the broker and in the hub."""

    # Tablets whose retained configuration must be published again (revisions already bumped).
    republish: frozenset[str] = field(default_factory=frozenset)
    # Calls under way or being set up that the decision no longer allows, on every replica.
    end_calls: tuple[EndCalls, ...] = ()
    # Tablets retired: their broker account goes, and their retained config and status topics.
    retire: frozenset[str] = field(default_factory=frozenset)
    # Contacts whose open family pages must close now (link revoked or regenerated).
    close_pages: frozenset[str] = field(default_factory=frozenset)
    # Commands sent to tablets (not retained: a tablet offline now does not get it).
    commands: tuple[TabletCommand, ...] = ()

    def __or__(self, other: Consequences) -> Consequences:
        ends = self.end_calls + tuple(e for e in other.end_calls if e not in self.end_calls)
        return Consequences(
            republish=self.republish | other.republish,
            end_calls=ends,
            retire=self.retire | other.retire,
            close_pages=self.close_pages | other.close_pages,
            commands=self.commands + tuple(c for c in other.commands if c not in self.commands),
        )

    @property
    def empty(self) -> bool:
        return not (
            self.republish or self.end_calls or self.retire or self.close_pages or self.commands
        )

    @property
    def to_publish(self) -> list[str]:
        """The tablets to republish, in order; a retired tablet gets nothing any more."""
        return sorted(self.republish - self.retire)

    def summary(self) -> dict[str, Any]:
        """As JSON (the CLI prints it; the log says it)."""
        return {
            "republish": self.to_publish,
            "end_calls": [
                {k: v for k, v in e.filters().items() if v} | {"reason": e.reason}
                for e in self.end_calls
            ],
            "retire": sorted(self.retire),
            "close_pages": sorted(self.close_pages),
            "commands": [{"tablet_id": c.tablet_id, "command": c.command} for c in self.commands],
        }


NOTHING = Consequences()


def republish(session: Session, tablet_ids: Iterable[str]) -> Consequences:
    """Bump these tablets' configuration revisions (in the caller's transaction)."""
    ids = sorted(set(tablet_ids))
    tablet_service.bump_revisions(session, ids)
    return Consequences(republish=frozenset(ids))


def residents_changed(session: Session, resident_ids: Iterable[str]) -> Consequences:
    """The tablets showing any of these residents must be republished."""
    ids: set[str] = set()
    for resident_id in set(resident_ids):
        ids.update(tablet_service.tablets_serving(session, resident_id))
    return republish(session, ids)


def end_calls(
    *,
    call_id: str | None = None,
    approval_id: str | None = None,
    resident_id: str | None = None,
    contact_id: str | None = None,
    reason: str = POLICY,
) -> Consequences:
    """``end_calls(approval_id=...)``: the matching calls end (by default: reason ``policy``)."""
    which = EndCalls(
        call_id=call_id,
        approval_id=approval_id,
        resident_id=resident_id,
        contact_id=contact_id,
        reason=reason,
    )
    return Consequences(end_calls=(which,))


def retired(tablet_ids: Iterable[str]) -> Consequences:
    return Consequences(retire=frozenset(tablet_ids))


def close_pages(contact_id: str) -> Consequences:
    return Consequences(close_pages=frozenset({contact_id}))


def command(tablet_ids: Iterable[str], name: str, **data: str) -> Consequences:
    """Send the command ``name`` (with ``data``) to each of these tablets."""
    items = tuple(sorted(data.items()))
    return Consequences(
        commands=tuple(TabletCommand(tid, name, items) for tid in sorted(set(tablet_ids)))
    )


def staff_pins_changed(session: Session, staff: Staff) -> Consequences:
    """Every tablet whose configuration carries (or carried) this member of staff's PIN verifier.

    ``staff_pins`` in a configuration lists the active staff of the tablet's home and every
    active administrator, each with a PIN set (``tablet_service.staff_pins``): a PIN set or
    changed, a member disabled or given another home, a role changed, must reach those tablets.
    Without a PIN the member is on no tablet and nothing changes.
    """
    if not staff.pin_hash:
        return NOTHING
    query = select(Tablet.id).where(Tablet.retired_at.is_(None), Tablet.enrolled_at.is_not(None))
    if staff.role != StaffRole.ADMIN.value:
        query = query.where(Tablet.home_id.in_([home.id for home in staff.homes] or [""]))
    return republish(session, session.scalars(query))
