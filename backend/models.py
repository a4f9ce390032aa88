"""Database models (SQLAlchemy 2). The Alembic migrations in ``backend/migrations`` create them."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# The call log's directions are the call model's (kiosk/calls/model.py).
from kiosk.calls.model import CallDirection as CallDirection


def new_id() -> str:
    return uuid.uuid4().hex


def new_tablet_id() -> str:
    # Short, lowercase, no wildcard: it is a topic level and a broker user name.
    return "t" + secrets.token_hex(6)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ResidentKind(StrEnum):
    SENIOR = "senior"
    YOUTH = "youth"


class ApprovalStatus(StrEnum):
    APPROVED = "approved"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


tablet_residents = Table(
    "tablet_residents",
    Base.metadata,
    Column("tablet_id", ForeignKey("tablets.id", ondelete="CASCADE"), primary_key=True),
    Column("resident_id", ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True),
)


class Home(Base):
    """A care home or a children's home."""

    __tablename__ = "homes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    # The home's public request page: /h/{slug}/demande (relatives ask to be linked).
    slug: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    # Photos sent for youth are always moderated; for seniors when this is set.
    moderate_senior_photos: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Isolation alert: a resident with no call (made or answered) for this many days.
    isolation_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    # Detailed events and call log rows older than this are folded into usage_daily, then deleted.
    retention_days: Mapped[int] = mapped_column(Integer, default=90, server_default="90")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    residents: Mapped[list[Resident]] = relationship(back_populates="home")
    contacts: Mapped[list[Contact]] = relationship(back_populates="home")
    tablets: Mapped[list[Tablet]] = relationship(back_populates="home")


class Resident(Base):
    """A person living in a home: an elderly resident (senior) or a placed child (youth)."""

    __tablename__ = "residents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(16), default=ResidentKind.SENIOR.value)
    language: Mapped[str] = mapped_column(String(8), default="fr")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Youth only: the hash of their own 4-digit PIN on the shared tablet.
    pin_hash: Mapped[str] = mapped_column(String(300), default="", server_default="")
    # The portrait staff uploaded: the SHA-256 of its JPEG in the portrait store (None: initials).
    portrait_id: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The last local day in usage_daily with a call made or answered (None: none rolled up):
    # what the isolation alerts read, one value per resident instead of a search through the
    # usage rows. Derived: backend.services.rollup.upsert keeps it equal to
    # max(usage_daily.day) over the resident's days with a call, whatever writes the rows.
    last_call_day: Mapped[date | None] = mapped_column(Date, nullable=True, default=None)

    home: Mapped[Home] = relationship(back_populates="residents")
    approvals: Mapped[list[Approval]] = relationship(back_populates="resident")


class Contact(Base):
    """A relative or friend; reaches the family portal through a personal link."""

    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str] = mapped_column(String(100))
    relation: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    # The bearer token of the personal link; staff can revoke or regenerate it.
    link_token: Mapped[str] = mapped_column(
        String(64), unique=True, default=lambda: secrets.token_urlsafe(24)
    )
    link_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The portrait on the tablet's tile (SHA-256 of its JPEG in the portrait store), or None.
    portrait_id: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    home: Mapped[Home] = relationship(back_populates="contacts")
    approvals: Mapped[list[Approval]] = relationship(back_populates="contact")


class Approval(Base):
    """Staff's decision that a contact may be in touch with a resident, and its policy."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("resident_id", "contact_id", name="uq_approval_pair"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(
        ForeignKey("residents.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[str] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=ApprovalStatus.APPROVED.value)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    resident: Mapped[Resident] = relationship(back_populates="approvals")
    contact: Mapped[Contact] = relationship(back_populates="approvals")


class Tablet(Base):
    """A shared tablet of a home. ``id`` is its topic level and broker user name."""

    __tablename__ = "tablets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_tablet_id)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # Hash of the tablet's broker password; empty until enrolled.
    password_hash: Mapped[str] = mapped_column(String(300), default="")
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    app_version: Mapped[str] = mapped_column(String(50), default="")
    # The link run that last said "online": a late last will from an older run is ignored.
    status_session: Mapped[str] = mapped_column(String(32), default="", server_default="")
    config_revision: Mapped[int] = mapped_column(Integer, default=0)
    # From the tablet's last heartbeat event (None: never said, or no battery).
    battery_percent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    charging: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    free_storage_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    home: Mapped[Home] = relationship(back_populates="tablets")
    # Empty means: the tablet serves every resident of its home.
    residents: Mapped[list[Resident]] = relationship(secondary=tablet_residents)


class EnrolmentCode(Base):
    """A single-use, expiring code that lets one tablet obtain its credentials."""

    __tablename__ = "enrolment_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tablet_id: Mapped[str] = mapped_column(ForeignKey("tablets.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEntry(Base):
    """One staff (or system) decision. Rows are only ever inserted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    home_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TabletEvent(Base):
    """A usage event reported by a tablet, stored once per envelope id."""

    __tablename__ = "tablet_events"
    # Today's events of a home's tablets (the roll-up), the retention job's scans (0009).
    __table_args__ = (Index("ix_tablet_events_tablet_ts", "tablet_id", "ts"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tablet_id: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(50))
    ts: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The backend replica that stored it (several replicas share the events, docs/scale.md).
    received_by: Mapped[str] = mapped_column(String(64), default="", server_default="")


class Call(Base):
    """One call attempt between a resident and a contact: who, when, how long, how it ended.

    Never any media, SDP or recording.
    """

    __tablename__ = "calls"
    # A resident's last call (the usage detail, migration 0009).
    __table_args__ = (Index("ix_calls_resident_created", "resident_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(16))
    resident_id: Mapped[str] = mapped_column(
        ForeignKey("residents.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[str] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    approval_id: Mapped[str] = mapped_column(String(32), index=True)
    tablet_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    ring_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    answer_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Supervised calls: the staff member whose PIN opened the call.
    supervised_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    seen_by_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StaffRole(StrEnum):
    ADMIN = "admin"  # the organisation: homes, staff, tablets, audit log
    STAFF = "staff"  # the homes they are assigned to


staff_homes = Table(
    "staff_homes",
    Base.metadata,
    Column("staff_id", ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True),
    Column("home_id", ForeignKey("homes.id", ondelete="CASCADE"), primary_key=True),
)


class Staff(Base):
    """A member of staff who logs in to the dashboard."""

    __tablename__ = "staff"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(200), unique=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))  # argon2
    # Supervised calls: the staff member's PIN, typed on the tablet (hashed).
    pin_hash: Mapped[str] = mapped_column(String(300), default="", server_default="")
    role: Mapped[str] = mapped_column(String(16), default=StaffRole.STAFF.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    homes: Mapped[list[Home]] = relationship(secondary=staff_homes)


class StaffSession(Base):
    """A logged-in browser. Only a hash of the cookie's token is stored."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    staff: Mapped[Staff] = relationship()


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class ContactRequest(Base):
    """A request to link a contact with a resident, waiting for staff in the home's queue.

    From a child on the tablet ("Demander un contact": who and the relation, no typing), or from
    a relative on the home's public request page.
    """

    __tablename__ = "contact_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[str | None] = mapped_column(
        ForeignKey("residents.id", ondelete="CASCADE"), nullable=True, index=True
    )
    source: Mapped[str] = mapped_column(String(16))  # "tablet" | "relative"
    # What the requester said, as given (a relative names the resident in free text).
    requester_name: Mapped[str] = mapped_column(String(200), default="")
    relation: Mapped[str] = mapped_column(String(100), default="")
    resident_name_given: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING.value, index=True)
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    contact_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# -- several backend replicas (docs/scale.md) ------------------------------------------------


class BackendReplica(Base):
    """A running backend replica; ``last_seen`` is its heartbeat."""

    __tablename__ = "backend_replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BrowserPresence(Base):
    """How many family pages of a contact a replica holds (their WebSockets)."""

    __tablename__ = "browser_presence"

    contact_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CallRoute(Base):
    """Which replica holds a call being set up or under way (its browser side)."""

    __tablename__ = "call_routes"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(64), index=True)
    contact_id: Mapped[str] = mapped_column(String(64), default="")
    resident_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    tablet_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PhotoStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


class Photo(Base):
    """A photo a relative sent to one resident (a photo sent to two residents is two rows).

    The image files are content-addressed (``sha256`` of the tablet-sized JPEG, see
    ``backend.photos.storage``) and shared by rows with the same content; a refused photo keeps
    its row (the relative sees the answer) but loses its files.
    """

    __tablename__ = "photos"
    __table_args__ = (
        UniqueConstraint("resident_id", "contact_id", "sha256", name="uq_photo_once"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[str] = mapped_column(
        ForeignKey("residents.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[str] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # the tablet-sized JPEG
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    thumb_sha256: Mapped[str] = mapped_column(String(64))
    thumb_size: Mapped[int] = mapped_column(Integer)
    caption: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default=PhotoStatus.PENDING.value, index=True)
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    resident: Mapped[Resident] = relationship()
    contact: Mapped[Contact] = relationship()
    hearts: Mapped[list[PhotoHeart]] = relationship(back_populates="photo")


class PhotoHeart(Base):
    """A heart a resident sent back from the tablet; ``id`` is the event's id (stored once)."""

    __tablename__ = "photo_hearts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    photo_id: Mapped[str] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[str] = mapped_column(
        ForeignKey("residents.id", ondelete="CASCADE"), index=True
    )
    tablet_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="hearts")


_HAD_A_CALL = text("calls_made > 0 OR calls_received > 0")


class UsageDaily(Base):
    """One resident's usage on one local day of their home: what staff charts are made of.

    Written by the roll-up (``backend/services/rollup.py``) from the call log and the tablet
    events; the retention job deletes the detailed rows only once their day is rolled up.
    """

    __tablename__ = "usage_daily"
    __table_args__ = (
        UniqueConstraint("home_id", "resident_id", "day"),
        # The usage pages' look-ups (migration 0009): partial indexes on the days with a call.
        Index(
            "ix_usage_daily_calls",
            "resident_id",
            "day",
            postgresql_where=_HAD_A_CALL,
            sqlite_where=_HAD_A_CALL,
        ),
        Index(
            "ix_usage_daily_call_days",
            "day",
            "resident_id",
            postgresql_where=_HAD_A_CALL,
            sqlite_where=_HAD_A_CALL,
        ),
        Index("ix_usage_daily_home_day", "home_id", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[str] = mapped_column(
        ForeignKey("residents.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[date] = mapped_column(Date, index=True)
    calls_made: Mapped[int] = mapped_column(Integer, default=0)  # by the resident
    calls_received: Mapped[int] = mapped_column(Integer, default=0)  # answered on the tablet
    calls_missed: Mapped[int] = mapped_column(Integer, default=0)  # to the resident, unanswered
    call_seconds: Mapped[int] = mapped_column(Integer, default=0)  # connected time, both ways
    # {activity key: times opened}, e.g. {"photos": 3, "memory": 1}
    activities: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    activity_seconds: Mapped[int] = mapped_column(Integer, default=0)
    rolled_up_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
