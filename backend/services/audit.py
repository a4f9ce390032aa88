"""The audit log: every staff or system decision, append-only."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.models import AuditEntry


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    home_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. There is deliberately no update or delete function."""
    entry = AuditEntry(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        home_id=home_id,
        details=details or {},
    )
    session.add(entry)
    return entry
