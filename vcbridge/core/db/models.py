"""The ORM models (SQLAlchemy 2.0 declarative, typed).

A recurring series is a `ConferenceSeries` row holding the RRULE plus one
`Conference` row per occurrence: every occurrence has its own times, status,
participants and lifecycle, so conflicts, scheduling and roll call work on
plain rows."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from vcbridge.core.db.types import UtcDateTime


class Base(DeclarativeBase):
    """Declarative base of every model."""


def _enum(cls: type[enum.Enum]) -> Enum:
    # Store the value text, not the member name, and avoid native PG enum
    # types so adding a value is a plain migration.
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class EndpointKind(enum.StrEnum):
    PROVINCIAL = "provincial"
    DISTRICT = "district"


class Role(enum.StrEnum):
    ADMIN = "admin"
    BOOKER = "booker"
    OPERATOR = "operator"
    IT = "it"


class ConferenceStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


# Statuses whose room is open: sites may join, the conference is running.
RUNNING_STATUSES = (ConferenceStatus.OPEN, ConferenceStatus.LIVE)
# Statuses that hold their endpoints and bridge capacity.
ACTIVE_STATUSES = (ConferenceStatus.SCHEDULED, *RUNNING_STATUSES)


class TokenScope(enum.StrEnum):
    LOGIN = "login"  # a user's session (bearer or cookie)
    AGENT = "agent"  # an endpoint agent: acts for one endpoint
    CALENDAR = "calendar"  # read-only iCalendar feed of one endpoint


class Endpoint(Base):
    """A conference endpoint ("điểm cầu") of the roster."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[EndpointKind] = mapped_column(_enum(EndpointKind))
    address: Mapped[str] = mapped_column(String(300), default="")
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    contact_phone: Mapped[str] = mapped_column(String(50), default="")
    contact_email: Mapped[str] = mapped_column(String(200), default="")
    # A SIP room system (issue 17): the bridge dials `sip_uri` through its SIP gateway;
    # "" for a site with the agent. Transport ("", udp, tcp, tls), SRTP ("", optional,
    # mandatory) and an outbound proxy of its own ("" for the gateway's).
    sip_uri: Mapped[str] = mapped_column(String(300), default="")
    sip_transport: Mapped[str] = mapped_column(String(8), default="")
    sip_srtp: Mapped[str] = mapped_column(String(16), default="")
    sip_proxy: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class User(Base):
    """A person who logs in."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role))
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("endpoints.id"), default=None)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    endpoint: Mapped[Endpoint | None] = relationship(lazy="joined")


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; the secret is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[TokenScope] = mapped_column(_enum(TokenScope))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    endpoint_id: Mapped[int | None] = mapped_column(ForeignKey("endpoints.id"), default=None)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_by: Mapped[str] = mapped_column(String(100), default="")


class ConferenceSeries(Base):
    """A recurring booking: the RRULE its occurrences were expanded from."""

    __tablename__ = "conference_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    rrule: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(100))


class Conference(Base):
    """One conference (for a series: one occurrence)."""

    __tablename__ = "conferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int | None] = mapped_column(
        ForeignKey("conference_series.id"), default=None, index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    agenda: Mapped[str] = mapped_column(Text, default="")
    chair_endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"))
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    setup_minutes: Mapped[int] = mapped_column(Integer)
    # start - setup_minutes, kept as a column so the conflict query is one index range.
    busy_start: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[ConferenceStatus] = mapped_column(_enum(ConferenceStatus))
    # Grows with every change (the iCalendar SEQUENCE).
    revision: Mapped[int] = mapped_column(Integer, default=0)
    # What the lifecycle actually did, and when (lateness is measured from these).
    warned: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    live_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # Why it was cancelled, as the booker wrote it ("" when not cancelled or not said).
    cancel_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(100))

    chair: Mapped[Endpoint] = relationship(lazy="joined")
    series: Mapped[ConferenceSeries | None] = relationship(lazy="joined")
    participants: Mapped[list[Participant]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="Participant.id"
    )

    __table_args__ = (
        Index("ix_conferences_status_busy_start", "status", "busy_start"),
        Index("ix_conferences_start", "start"),
    )


class Participant(Base):
    """An endpoint booked into a conference."""

    __tablename__ = "conference_participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"))

    endpoint: Mapped[Endpoint] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("conference_id", "endpoint_id"),
        Index("ix_participants_endpoint_conference", "endpoint_id", "conference_id"),
    )


class BookingLock(Base):
    """One row that every booking transaction locks first.

    The row lock (PostgreSQL) or the write lock (SQLite) serialises the
    conflict check and the insert, so two racing bookings cannot both pass."""

    __tablename__ = "booking_lock"

    id: Mapped[int] = mapped_column(primary_key=True)


class AuditEvent(Base):
    """Who did what, when: before and after (ISO 9001 record keeping)."""

    __tablename__ = "audit_events"
    # "What happened to conference 42": the audit page and API filter by target.
    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[Any | None] = mapped_column(JSON, default=None)
    after: Mapped[Any | None] = mapped_column(JSON, default=None)
    remote: Mapped[str] = mapped_column(String(64), default="")


class EventSequence(Base):
    """The last event sequence number given out.

    Taking the next number locks this row until commit, so events commit in
    sequence order and a reader that saw N never later finds an N-1."""

    __tablename__ = "event_sequence"

    id: Mapped[int] = mapped_column(primary_key=True)
    last: Mapped[int] = mapped_column(BigInteger, default=0)


class Event(Base):
    """A persisted event of the live event stream, numbered without gaps."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    type: Mapped[str] = mapped_column(String(64))
    conference_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    endpoint_code: Mapped[str | None] = mapped_column(String(64), default=None)
    # Endpoint codes whose operators and agents may see the event (staff see all).
    audience: Mapped[list[str]] = mapped_column(JSON, default=list)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Attendance(Base):
    """Where one endpoint stands in one conference (the connect policy's state)."""

    __tablename__ = "attendance"

    id: Mapped[int] = mapped_column(primary_key=True)
    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"))
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_change: Mapped[datetime] = mapped_column(UtcDateTime)
    next_action_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None, index=True)
    reason: Mapped[str] = mapped_column(String(32), default="")
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether the endpoint was online when the room opened (the readiness check).
    ready_at_open: Mapped[bool | None] = mapped_column(Boolean, default=None)

    endpoint: Mapped[Endpoint] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("conference_id", "endpoint_id"),)


class EndpointPresence(Base):
    """Whether an endpoint's agent or console is connected to the event stream."""

    __tablename__ = "endpoint_presence"

    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"), primary_key=True)
    connections: Mapped[int] = mapped_column(Integer, default=0)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)


class LoginThrottle(Base):
    """Failed logins of one key, shared by every process (vcbridge/core/auth/login_limiter.py).

    A key is a user name from one client address (`u|<address>|<name>`:
    exponential backoff) or a client address (`a|<address>`: a fixed window).
    Each attempt locks its rows while it is counted, so parallel attempts are
    counted one after the other; rows past `expires_at` are forgotten."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # The address key: start of its window. The user name key: its first failure.
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    # The user name key: no attempt before this time (None: no backoff).
    blocked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class EndpointHealth(Base):
    """An endpoint's latest health (monitoring), shared by every process.

    Written at every change of state or reasons, and otherwise at most every
    `health_persist_seconds` per endpoint: heartbeats are handled in memory.
    No row: the endpoint never sent a heartbeat."""

    __tablename__ = "endpoint_health"

    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))  # ok, degraded, offline
    # [{"code", "value"?, "limit"?, "at"?}] (monitoring.health.model.Reason)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # When the current state began.
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    # Server time of the newest heartbeat, and what it said (normalised).
    last_heartbeat: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The last test call the agent reported (kept until a newer one).
    test_call: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class HealthTransition(Base):
    """A change of an endpoint's health state or reasons; kept for reports."""

    __tablename__ = "health_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    state: Mapped[str] = mapped_column(String(20))
    # The state before; None for the first heartbeat ever.
    previous: Mapped[str | None] = mapped_column(String(20), default=None)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (Index("ix_health_transitions_endpoint_at", "endpoint_id", "at"),)


class HealthSample(Base):
    """One endpoint's heartbeats over one minute: sums and counts, merged by upsert.

    Sums (not averages) so several processes, or one process flushing twice,
    add up exactly; the mean of a figure is `<name>_sum / <name>_n`. Kept
    `health_samples_days` (35) days."""

    __tablename__ = "health_samples"

    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True, index=True)
    heartbeats: Mapped[int] = mapped_column(Integer, default=0)
    degraded: Mapped[int] = mapped_column(Integer, default=0)  # heartbeats found degraded
    in_call: Mapped[int] = mapped_column(Integer, default=0)  # heartbeats with call figures
    cpu_sum: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_n: Mapped[int] = mapped_column(Integer, default=0)
    net_rtt_sum: Mapped[float] = mapped_column(Float, default=0.0)
    net_rtt_n: Mapped[int] = mapped_column(Integer, default=0)
    rtt_sum: Mapped[float] = mapped_column(Float, default=0.0)
    rtt_n: Mapped[int] = mapped_column(Integer, default=0)
    jitter_sum: Mapped[float] = mapped_column(Float, default=0.0)
    jitter_n: Mapped[int] = mapped_column(Integer, default=0)
    loss_sum: Mapped[float] = mapped_column(Float, default=0.0)
    loss_n: Mapped[int] = mapped_column(Integer, default=0)
    fps_sum: Mapped[float] = mapped_column(Float, default=0.0)
    fps_n: Mapped[int] = mapped_column(Integer, default=0)
    bitrate_in_sum: Mapped[float] = mapped_column(Float, default=0.0)
    bitrate_in_n: Mapped[int] = mapped_column(Integer, default=0)
    bitrate_out_sum: Mapped[float] = mapped_column(Float, default=0.0)
    bitrate_out_n: Mapped[int] = mapped_column(Integer, default=0)
    # The bridge's view of the same minute (one figure per sampling window, added by the
    # process whose room carried the endpoint's media).
    bridge_rtt_sum: Mapped[float] = mapped_column(Float, default=0.0)
    bridge_rtt_n: Mapped[int] = mapped_column(Integer, default=0)
    bridge_jitter_sum: Mapped[float] = mapped_column(Float, default=0.0)
    bridge_jitter_n: Mapped[int] = mapped_column(Integer, default=0)
    bridge_loss_sum: Mapped[float] = mapped_column(Float, default=0.0)
    bridge_loss_n: Mapped[int] = mapped_column(Integer, default=0)
    bridge_fps_sum: Mapped[float] = mapped_column(Float, default=0.0)
    bridge_fps_n: Mapped[int] = mapped_column(Integer, default=0)
    bridge_bitrate_in_sum: Mapped[float] = mapped_column(Float, default=0.0)
    bridge_bitrate_in_n: Mapped[int] = mapped_column(Integer, default=0)
    bridge_bitrate_out_sum: Mapped[float] = mapped_column(Float, default=0.0)
    bridge_bitrate_out_n: Mapped[int] = mapped_column(Integer, default=0)


class BridgeMedia(Base):
    """The bridge's newest view of an endpoint's media, shared by every process.

    Rooms are per process: the process carrying a site's media measures it
    (bridge/media_report.py, every sampling window) and writes it here; the
    process that takes the site's heartbeats reads it to judge the call on
    the worse of the two views. Figures all null: the site left the room."""

    __tablename__ = "bridge_media"

    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"), primary_key=True)
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    rtt_ms: Mapped[float | None] = mapped_column(Float, default=None)
    jitter_ms: Mapped[float | None] = mapped_column(Float, default=None)
    packet_loss_ratio: Mapped[float | None] = mapped_column(Float, default=None)
    bitrate_in_bps: Mapped[float | None] = mapped_column(Float, default=None)
    bitrate_out_bps: Mapped[float | None] = mapped_column(Float, default=None)
    fps: Mapped[float | None] = mapped_column(Float, default=None)


class BridgeNode(Base):
    """A bridge node: a process that carries rooms' media (issue 15, bridge nodes).

    Every node registers at start (a new `incarnation` each time) and heartbeats
    its row; the scheduler leader declares a node whose heartbeat is older than
    `node_dead_after_seconds` dead and moves its rooms. Times are the database's
    own clock (`now()`), so machines' clocks need not agree."""

    __tablename__ = "bridge_nodes"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    # The base URL sites use for this node's signaling WebSocket (http(s)://host[:port]).
    advertise_url: Mapped[str] = mapped_column(String(300))
    capacity_ports: Mapped[int] = mapped_column(Integer)
    load_ports: Mapped[int] = mapped_column(Integer, default=0)
    rooms: Mapped[int] = mapped_column(Integer, default=0)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    incarnation: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(20), default="live")  # live, draining, dead
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RoomPlacement(Base):
    """Which node holds a conference's room. The primary key is what guarantees one
    room per conference: a placement is inserted with ON CONFLICT DO NOTHING, and the
    loser of a race follows the winner's row."""

    __tablename__ = "room_placements"

    conference_id: Mapped[int] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(120), index=True)
    # The node's incarnation when the room was placed there (fencing).
    incarnation: Mapped[int] = mapped_column(Integer)
    # +1 at each re-placement, so a site can tell a newer placement from an older one.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Document(Base):
    """A meeting document ("tài liệu") attached to a conference or to its whole series.

    Its content lives in `document_chunks` and its search index in `document_search`
    (an FTS5 table on SQLite, a tsvector table on PostgreSQL: documents/search.py), so
    every process sees it and a database backup holds it."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The conference it was attached through; `series_id` set: every occurrence's.
    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id"), index=True)
    series_id: Mapped[int | None] = mapped_column(
        ForeignKey("conference_series.id"), default=None, index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # The text read from it (NFC, at most documents.inspection.Limits.max_chars).
    text: Mapped[str] = mapped_column(Text, default="")
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    uploaded_by: Mapped[str] = mapped_column(String(100))


class DocumentChunk(Base):
    """One piece of a document's content, in order (1 MiB each but the last), so a
    download streams without holding the whole file in memory."""

    __tablename__ = "document_chunks"

    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RoomState(Base):
    """A conference room's floor, moderation and recording, saved as they change
    (bridge/room_state_store.py), so a room opened again for the conference (this
    process restarted, or another bridge node took the room over) finds them.

    Who is connected is not kept: that is the connections' business, and the roll
    call's (attendance). The codes are endpoint codes, lists sorted except the
    queue (in order of asking)."""

    __tablename__ = "room_states"

    conference_id: Mapped[int] = mapped_column(
        ForeignKey("conferences.id", ondelete="CASCADE"), primary_key=True)
    # The bridge node whose room saved it last ("" for the all-in-one process).
    node: Mapped[str] = mapped_column(String(120), default="", index=True)
    floor_holder: Mapped[str | None] = mapped_column(String(64), default=None)
    floor_queue: Mapped[list[str]] = mapped_column(JSON, default=list)
    muted: Mapped[list[str]] = mapped_column(JSON, default=list)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    recording: Mapped[bool] = mapped_column(Boolean, default=False)
    # Every file the room recorded into, oldest first (the last one while recording).
    recording_files: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The last file was finished in order (the process stopped, the conference goes on).
    recording_finished: Mapped[bool] = mapped_column(Boolean, default=False)
    # The rest of the floor state: every code allowed in (booked and admitted), those
    # with a seat, those removed by the chair, those refused; the snapshot version.
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    seated: Mapped[list[str]] = mapped_column(JSON, default=list)
    removed: Mapped[list[str]] = mapped_column(JSON, default=list)
    refused: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
