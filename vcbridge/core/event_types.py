"""The event contract: every event type of the bus, the `data` it carries, who sees it.

Publishers name their events with `EventType` members (never bare strings),
subscribers compare with them, and the event stream's documentation
(`docs/events.md`, the OpenAPI document) is derived from `EVENTS`. The wire
form does not change: a member *is* its string (`EventType.CONFERENCE_LIVE ==
"conference.live"`).

Each type's payload is a `TypedDict`: a static description of `data` (keys,
types, which are always there) that costs nothing when publishing (a series
of 2,000 occurrences publishes 2,000 events in one statement) and that tests
validate real events against (`payload_adapter`). Keys are listed in the
order the OpenAPI document names the required ones.

Who sees an event is its `audience` (endpoint codes stored with the event):
staff (admin, booker, it) see every event; an operator or an agent sees the
events whose audience names its endpoint. `Audience` names the rule each type
follows; the publisher computes the codes."""

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, Literal, NotRequired

from pydantic import ConfigDict, TypeAdapter, with_config

# pydantic reads TypedDicts from typing_extensions on Python < 3.12.
from typing_extensions import TypedDict


class EventType(StrEnum):
    """Every event type of the event bus (the `type` of the wire form)."""

    # The booking and the lifecycle (scheduler/).
    CONFERENCE_BOOKED = "conference.booked"
    CONFERENCE_UPDATED = "conference.updated"
    CONFERENCE_CANCELLED = "conference.cancelled"
    CONFERENCE_OPENED = "conference.opened"
    CONFERENCE_LIVE = "conference.live"
    CONFERENCE_ENDING_SOON = "conference.ending_soon"
    CONFERENCE_ENDED = "conference.ended"
    # The roll call (scheduler/attendance.py, reported by the bridge's rooms).
    ENDPOINT_INVITED = "endpoint.invited"
    ENDPOINT_JOINED = "endpoint.joined"
    ENDPOINT_DROPPED = "endpoint.dropped"
    ENDPOINT_DECLINED = "endpoint.declined"
    ENDPOINT_LEFT = "endpoint.left"
    ENDPOINT_ABSENT = "endpoint.absent"
    # The bridge dialled a SIP room system and the call failed (redialled by the policy).
    ENDPOINT_CALL_FAILED = "endpoint.call_failed"
    # What happens in a media room (bridge/room.py); `endpoint` is the site that acted.
    FLOOR_REQUEST = "floor.request"
    FLOOR_CANCEL = "floor.cancel"
    FLOOR_RELEASE = "floor.release"
    FLOOR_GRANT = "floor.grant"
    FLOOR_REFUSE = "floor.refuse"
    FLOOR_REVOKE = "floor.revoke"
    FLOOR_MUTE = "floor.mute"
    FLOOR_MUTE_ALL = "floor.mute_all"
    FLOOR_LOCK = "floor.lock"
    FLOOR_ADMIT = "floor.admit"
    FLOOR_REMOVE = "floor.remove"
    FLOOR_RECORD = "floor.record"
    # Endpoint health and the pre-flight readiness (monitoring/).
    ENDPOINT_HEALTH = "endpoint.health"
    CONFERENCE_READINESS = "conference.readiness"
    # Bridge nodes (issue 15): where a conference's room is, and a node declared dead.
    CONFERENCE_ROOM_PLACED = "conference.room_placed"
    BRIDGE_NODE_DEAD = "bridge_node.dead"

    @classmethod
    def floor(cls, action: str) -> "EventType":
        """The event of a room's moderation action (a signaling message type: `mute`,
        `floor.grant`, ...); ValueError for an action that has none."""
        return cls(action if action.startswith("floor.") else f"floor.{action}")


class Audience(StrEnum):
    """Which endpoints an event's audience names (staff see every event anyway)."""

    PARTICIPANTS = "participants"  # every participant of the conference
    ENDPOINT = "endpoint"  # the endpoint the event is about
    ACTOR_AND_TARGET = "actor_and_target"  # the site that acted and `data.endpoint`, if any
    STAFF = "staff"  # nobody: staff only


# -- payloads ----------------------------------------------------------------------------

_CLOSED = ConfigDict(extra="forbid")


@with_config(_CLOSED)
class Empty(TypedDict):
    """No data."""


@with_config(_CLOSED)
class ConferenceBooked(TypedDict):
    start: str  # local ISO time of the occurrence's start


@with_config(_CLOSED)
class ConferenceUpdated(TypedDict):
    changed: list[str]  # the changed fields of the conference's API form, sorted


@with_config(_CLOSED)
class ConferenceCancelled(TypedDict):
    was: str  # the status before: scheduled, open or live
    cancel_reason: str  # why, as the booker wrote it ("" when not given)


@with_config(_CLOSED)
class Lateness(TypedDict):
    late_ms: int  # how long after its due time the transition ran


@with_config(_CLOSED)
class OpeningReadiness(TypedDict):
    ready: list[str]  # participants on line when the room opened
    offline: list[str]
    summary_vi: str
    summary_en: str


@with_config(_CLOSED)
class ConferenceOpened(TypedDict):
    late_ms: int
    readiness: OpeningReadiness


@with_config(_CLOSED)
class ConferenceEndingSoon(TypedDict):
    late_ms: int
    minutes_left: int


class BridgeRef(TypedDict):
    """Where a conference's room is: the bridge node and the signaling base URL its
    sites use (`GET /api/v1/conferences/{id}` carries the same as `bridge`)."""

    node: str
    url: str
    generation: int  # +1 at each re-placement (a node lost)


@with_config(_CLOSED)
class EndpointInvited(TypedDict):
    attempt: int  # 1 for the first call
    reason: str  # `invited` for a first call, else the failure being redialled
    # Where to connect; null while the room is not placed (or on a single process).
    bridge: NotRequired[BridgeRef | None]


@with_config(_CLOSED)
class RoomPlaced(TypedDict):
    node: str
    url: str
    generation: int
    # The node the room was on before (absent for a first placement).
    previous: NotRequired[str]


@with_config(_CLOSED)
class BridgeNodeDead(TypedDict):
    node: str
    incarnation: int
    rooms: list[int]  # the conferences whose rooms it held (moved to other nodes)


@with_config(_CLOSED)
class EndpointAbsent(TypedDict):
    attempts: int


@with_config(_CLOSED)
class EndpointCallFailed(TypedDict):
    reason: str  # busy, unreachable, rejected, no_common_codec (the roll call's reason)
    sip_code: int  # the SIP final response; 0 when none came (gateway down, bad answer)
    sip_reason: str  # its reason phrase, or what went wrong


class ModeratorRef(TypedDict):
    """The person who acted on the chair's behalf (control mode)."""

    user: str
    role: str


@with_config(_CLOSED)
class FloorAction(TypedDict):
    by: NotRequired[ModeratorRef]  # present when a moderator acted on the chair's behalf


@with_config(_CLOSED)
class FloorTargeted(FloorAction):
    endpoint: str


@with_config(_CLOSED)
class FloorMute(FloorAction):
    endpoint: str
    muted: bool


@with_config(_CLOSED)
class FloorMuteAll(FloorAction):
    muted: bool


@with_config(_CLOSED)
class FloorLock(FloorAction):
    locked: bool


@with_config(_CLOSED)
class FloorRecord(FloorAction):
    on: bool
    recording: str  # the file's name
    # Why the bridge stopped or started the recording itself (absent when the chair did):
    # the room closed, writing failed, or the room was opened again (its process
    # restarted, or another node took it over): the cut file stops ("interrupted") and
    # the recording goes on into a new one ("resumed").
    # A node fenced off (its room moved elsewhere) stops its file with "moved".
    cause: NotRequired[Literal["ended", "cancelled", "shutdown", "failed", "interrupted",
                               "resumed", "moved"]]


class HealthReason(TypedDict):
    """One reason of a health state (`monitoring/responses.HealthReason`)."""

    code: str
    vi: str
    en: str
    value: NotRequired[float]
    limit: NotRequired[float]
    at: NotRequired[str]


@with_config(_CLOSED)
class EndpointHealth(TypedDict):
    state: str
    previous: str | None
    since: str  # local ISO time
    reasons: list[HealthReason]


class ReadinessItem(TypedDict):
    """One participant of the pre-flight readiness."""

    code: str
    ready: bool
    state: str
    problems: list[str]


@with_config(_CLOSED)
class ConferenceReadiness(TypedDict):
    ready: int
    total: int
    summary_vi: str
    summary_en: str
    endpoints: list[ReadinessItem]


# -- the contract ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSpec:
    """What an event type means, the `data` it carries, and who sees it."""

    description: str
    payload: type
    audience: Audience

    @property
    def required(self) -> tuple[str, ...]:
        """The `data` keys the event always carries, in declaration order."""
        keys: frozenset[str] = getattr(self.payload, "__required_keys__", frozenset())
        return tuple(k for k in self.payload.__annotations__ if k in keys)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every `data` key the event may carry."""
        return tuple(self.payload.__annotations__)


_P, _E = Audience.PARTICIPANTS, Audience.ENDPOINT
_A = Audience.ACTOR_AND_TARGET

EVENTS: dict[EventType, EventSpec] = {
    EventType.CONFERENCE_BOOKED: EventSpec(
        "Booked (one per occurrence of a series); data.start.", ConferenceBooked, _P),
    EventType.CONFERENCE_UPDATED: EventSpec(
        "Changed; data.changed lists the changed fields.", ConferenceUpdated, _P),
    EventType.CONFERENCE_CANCELLED: EventSpec(
        "Cancelled; data.was is the status before, data.cancel_reason why (\"\" when not "
        "given).", ConferenceCancelled, _P),
    EventType.CONFERENCE_OPENED: EventSpec(
        "The room opened (setup time began); data.readiness says which endpoints were on "
        "line.", ConferenceOpened, _P),
    EventType.CONFERENCE_LIVE: EventSpec(
        "The conference started; participants are invited.", Lateness, _P),
    EventType.CONFERENCE_ENDING_SOON: EventSpec(
        "The end is near; data.minutes_left.", ConferenceEndingSoon, _P),
    EventType.CONFERENCE_ENDED: EventSpec(
        "The conference ended; the room closed.", Lateness, _P),
    EventType.ENDPOINT_INVITED: EventSpec(
        "The bridge invites the endpoint; data.attempt and data.reason (why: a first call "
        "or the failure being redialled).", EndpointInvited, _E),
    EventType.ENDPOINT_JOINED: EventSpec("The endpoint joined.", Empty, _E),
    EventType.ENDPOINT_DROPPED: EventSpec(
        "The endpoint lost the call; it is redialled.", Empty, _E),
    EventType.ENDPOINT_DECLINED: EventSpec(
        "The endpoint declined; it is not re-invited automatically.", Empty, _E),
    EventType.ENDPOINT_LEFT: EventSpec("The endpoint hung up.", Empty, _E),
    EventType.ENDPOINT_ABSENT: EventSpec(
        "The endpoint never answered data.attempts invitations (told to staff once; it is "
        "still redialled).", EndpointAbsent, Audience.STAFF),
    EventType.ENDPOINT_CALL_FAILED: EventSpec(
        "The bridge's call to the SIP room failed: data.reason (busy, unreachable, rejected, "
        "no_common_codec), data.sip_code and data.sip_reason; it is redialled.",
        EndpointCallFailed, _E),
    EventType.FLOOR_REQUEST: EventSpec("The site asked for the floor.", FloorAction, _A),
    EventType.FLOOR_CANCEL: EventSpec(
        "The site withdrew its request for the floor.", FloorAction, _A),
    EventType.FLOOR_RELEASE: EventSpec("The site gave the floor back.", FloorAction, _A),
    EventType.FLOOR_GRANT: EventSpec(
        "The chair gave the floor to data.endpoint.", FloorTargeted, _A),
    EventType.FLOOR_REFUSE: EventSpec(
        "The chair refused data.endpoint's request.", FloorTargeted, _A),
    EventType.FLOOR_REVOKE: EventSpec("The chair took the floor back.", FloorAction, _A),
    EventType.FLOOR_MUTE: EventSpec(
        "The chair muted (data.muted true) or unmuted data.endpoint.", FloorMute, _A),
    EventType.FLOOR_MUTE_ALL: EventSpec(
        "The chair muted or unmuted every site but itself and the floor holder "
        "(data.muted).", FloorMuteAll, _A),
    EventType.FLOOR_LOCK: EventSpec(
        "The chair locked or unlocked the room (data.locked).", FloorLock, _A),
    EventType.FLOOR_ADMIT: EventSpec(
        "The chair let in data.endpoint, which was not booked.", FloorTargeted, _A),
    EventType.FLOOR_REMOVE: EventSpec(
        "The chair removed data.endpoint for good.", FloorTargeted, _A),
    EventType.FLOOR_RECORD: EventSpec(
        "Recording started (data.on true) or stopped; data.recording is the file "
        "(GET /api/v1/conferences/{id}/recordings). data.cause says why the bridge stopped "
        "or started it itself: the room closed (ended, cancelled, shutdown), writing failed "
        "(failed), or the room opened again after its process stopped: the cut file stops "
        "(interrupted) and the recording goes on into a new file (resumed).",
        FloorRecord, _A),
    EventType.ENDPOINT_HEALTH: EventSpec(
        "The endpoint's health state or reasons changed; data.state, data.previous, "
        "data.since, data.reasons.", EndpointHealth, _E),
    EventType.CONFERENCE_READINESS: EventSpec(
        "The pre-flight check when the room opens: data.ready of data.total, "
        "data.summary_vi, data.summary_en, data.endpoints.", ConferenceReadiness, _P),
    EventType.CONFERENCE_ROOM_PLACED: EventSpec(
        "The conference's room was placed on bridge node data.node (first placement, or "
        "data.generation > 1: moved from data.previous after that node was lost); sites "
        "connect their signaling to data.url.", RoomPlaced, _P),
    EventType.BRIDGE_NODE_DEAD: EventSpec(
        "Bridge node data.node stopped heartbeating and was declared dead; data.rooms "
        "lists the conferences whose rooms were moved.", BridgeNodeDead, Audience.STAFF),
}

# The lifecycle transitions' events; each carries `data.late_ms`.
TRANSITION_EVENTS = frozenset({
    EventType.CONFERENCE_OPENED, EventType.CONFERENCE_LIVE, EventType.CONFERENCE_ENDING_SOON,
    EventType.CONFERENCE_ENDED,
})
# The events after which a conference's room is closed, with the reason the sites are told.
ROOM_CLOSING: dict[EventType, Literal["ended", "cancelled"]] = {
    EventType.CONFERENCE_ENDED: "ended", EventType.CONFERENCE_CANCELLED: "cancelled",
}


@cache
def payload_adapter(event_type: EventType) -> TypeAdapter[Any]:
    """A pydantic validator of the type's `data` (tests check real events with it)."""
    return TypeAdapter(EVENTS[event_type].payload)


def described(types: frozenset[EventType] | None = None
              ) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Type -> (description, required `data` keys), in contract order (for the OpenAPI
    document); every type, or those in `types`."""
    return {t.value: (spec.description, spec.required) for t, spec in EVENTS.items()
            if types is None or t in types}
