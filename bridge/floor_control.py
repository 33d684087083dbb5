"""The room's floor and moderation as a pure state machine. No asyncio, no I/O.

A provincial briefing is chaired: one endpoint (the conference's chair) runs
the meeting and its voice is always on. A district asks for the floor ("xin
phát biểu") and waits in a queue; the chair grants or refuses, takes the floor
back, mutes or unmutes one site or all, locks the room and removes sites.

Every action is a function from a `FloorState` to a new one. An invalid action
raises `FloorError` with a machine `code` for the client; an action that
changes nothing returns the *same* object (callers can skip the broadcast with
`new is old`), and every real change bumps `version`, so a client that gets
snapshots out of order keeps the newest.

Authority is the chair's endpoint code (`actor == state.chair`), not its
presence: the chair's operator console is a separate web client, and it must
keep moderating while the chair endpoint itself is reconnecting. A
moderator (an `Actor`: a booker or admin at the chair console, or the chair's operator
without media) has the same authority on the chair's behalf without being a
site: it takes no seat, cannot ask for the floor, and is never in `sites`.

Connections come and go without losing anything: a site that drops keeps its
seat, its place in the queue, the floor and its mute, and finds them again
when it reconnects. Removal is the only way out, and it is final."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias, TypedDict

from vcbridge.core.audit import Actor

FloorErrorCode = Literal[
    "not_chair",  # the action is the chair's and the actor is not the chair
    "is_chair",  # the action does not apply to the chair (its voice needs no floor)
    "unknown_site",  # neither booked nor admitted
    "invalid_code",  # an empty endpoint code
    "removed",  # removed by the chair: out for the rest of the meeting
    "locked",  # the room is locked and the site has no seat
    "not_present",  # the site must be connected for this
    "not_requested",  # refusing a site that is not asking for the floor
    "already_holder",  # asking for the floor while holding it
    "not_site",  # a site's own action (ask, withdraw, give back) sent by a moderator
]


class FloorError(Exception):
    """An action the floor state does not allow; `code` is for clients, the message for people."""

    def __init__(self, code: FloorErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: FloorErrorCode = code


# Who performs an action: a site's endpoint code (the chair's included) or a moderator,
# a person who moderates on the chair's behalf without being a site: a booker or admin
# (or the chair endpoint's operator) at the chair console in control mode. Every chair
# action is allowed to a moderator, as if the chair did it; a site's own actions are not
# (no seat to ask the floor for). A moderator is the audit `Actor` the log names.
FloorActor: TypeAlias = str | Actor


@dataclass(frozen=True)
class FloorState:
    """The floor and moderation state of one room. Immutable: actions return a new value.

    `sites` keeps every code that was ever allowed in (booked, then admitted),
    removed ones included, so the chair console can still list them."""

    chair: str
    # Codes allowed in the room: the booked participants, plus admitted ones.
    sites: frozenset[str]
    # Currently connected.
    present: frozenset[str] = frozenset()
    # Who has the floor; never the chair (its voice is always on).
    holder: str | None = None
    # Requests for the floor, in order of asking.
    queue: tuple[str, ...] = ()
    # Sites whose last request was refused; cleared when they ask again or get the floor.
    refused: frozenset[str] = frozenset()
    # Muted by the chair (the chair only by muting itself explicitly).
    muted: frozenset[str] = frozenset()
    # A locked room takes no new site: only those with a seat may (re)join.
    locked: bool = False
    removed: frozenset[str] = frozenset()
    # Sites holding a seat: those that joined at least once, those the chair
    # admitted, and the chair. The lock keeps out everyone else, so a site
    # whose line drops during a locked meeting can still come back.
    seated: frozenset[str] = frozenset()
    # Incremented on every change, so clients can drop stale snapshots.
    version: int = 0

    def __post_init__(self) -> None:
        # Cheap (31 sites at most) and catches a state built or restored by hand.
        if not self.chair:
            raise ValueError("the chair's endpoint code must not be empty")
        if "" in self.sites:
            raise ValueError("endpoint codes must not be empty")
        if self.chair not in self.sites or self.chair not in self.seated:
            raise ValueError("the chair must be one of the sites, with a seat")
        for name in ("present", "refused", "muted", "removed", "seated"):
            if not getattr(self, name) <= self.sites:
                raise ValueError(f"{name} must only hold codes of the room's sites")
        if not set(self.queue) <= self.sites or len(set(self.queue)) != len(self.queue):
            raise ValueError("the queue must hold distinct codes of the room's sites")
        if self.chair in self.removed or self.chair in self.queue:
            raise ValueError("the chair can be neither removed nor queued")
        if self.present & self.removed or self.removed.intersection(self.queue):
            raise ValueError("a removed site can be neither present nor queued")
        if self.holder is not None and (
            self.holder == self.chair
            or self.holder not in self.sites
            or self.holder in self.removed
            or self.holder in self.queue
        ):
            raise ValueError("the holder must be a site in the room, not the chair, not queued")
        if self.refused.intersection(self.queue):
            raise ValueError("a site cannot be both asking and refused")
        if self.version < 0:
            raise ValueError("version must not be negative")


# --- checks -----------------------------------------------------------------


def chair_role(state: FloorState, actor: FloorActor) -> None:
    """Raise FloorError("not_chair") unless `actor` is the chair of this room or a moderator.

    Every moderation action checks this first, so a district's client gets
    "not_chair" whatever else is wrong with its request."""
    if isinstance(actor, Actor):
        return
    if actor != state.chair:
        raise FloorError(
            "not_chair", f"only the chair ({state.chair}) may do this, not {actor or '(none)'}"
        )


def site_role(actor: FloorActor) -> str:
    """The endpoint code of a site acting for itself; FloorError("not_site") for a moderator.

    Asking for the floor, withdrawing and giving it back are a site's own acts:
    a moderator has no seat and no voice in the room."""
    if isinstance(actor, Actor):
        raise FloorError(
            "not_site", f"{actor.name} moderates without being a site: only a site asks for, "
            "withdraws or gives back the floor"
        )
    return actor


def _check_site(state: FloorState, code: str) -> None:
    """A site that may take part: booked or admitted, and not removed."""
    if code in state.removed:
        raise FloorError("removed", f"{code} was removed from this conference")
    if code not in state.sites:
        raise FloorError("unknown_site", f"{code or '(none)'} is not a participant of this room")


def _check_not_chair(state: FloorState, code: str, what: str) -> None:
    if code == state.chair:
        raise FloorError("is_chair", f"{code} is the chair: {what}")


def _commit(old: FloorState, new: FloorState) -> FloorState:
    """`old` itself when nothing changed, else `new` one version later."""
    if new == old:
        return old
    return replace(new, version=old.version + 1)


# --- the room -----------------------------------------------------------------


def new_floor(chair: str, sites: Iterable[str]) -> FloorState:
    """The room before anyone connects: `sites` are the booked codes (the chair is added).

    Raises ValueError (not FloorError) on empty codes: this is configuration,
    not a participant's action."""
    return FloorState(chair=chair, sites=frozenset(sites) | {chair}, seated=frozenset({chair}))


def join(state: FloorState, code: str) -> FloorState:
    """`code` connected.

    Refused for a removed site (never again), for a code neither booked nor
    admitted, and, in a locked room, for a site without a seat. A site that
    was in the room before keeps its seat through the lock: a reconnection is
    not a newcomer. A site already present is unchanged (duplicate event)."""
    _check_site(state, code)
    if code in state.present:
        return state
    if state.locked and code not in state.seated:
        raise FloorError("locked", f"the room is locked: {code} cannot join")
    return _commit(
        state, replace(state, present=state.present | {code}, seated=state.seated | {code})
    )


def leave(state: FloorState, code: str) -> FloorState:
    """`code` disconnected (dropped or hung up).

    Its floor, place in the queue and mute stay: most leaves during a
    briefing are line drops, and the district comes back to where it was. A
    code that is not present (or unknown) changes nothing."""
    if code not in state.present:
        return state
    return _commit(state, replace(state, present=state.present - {code}))


def admit(state: FloorState, actor: FloorActor, code: str) -> FloorState:
    """The chair lets `code` in: a site that was not booked, or a booked one through the lock.

    An admitted site gets a seat, so it may join even while the room is
    locked: the lock is against strangers, not against the chair's own
    decision. A removed site stays out."""
    chair_role(state, actor)
    if not code:
        raise FloorError("invalid_code", "an endpoint code must not be empty")
    if code in state.removed:
        raise FloorError("removed", f"{code} was removed from this conference")
    return _commit(state, replace(state, sites=state.sites | {code}, seated=state.seated | {code}))


def lock(state: FloorState, actor: FloorActor, locked: bool) -> FloorState:
    """The chair locks (no new site may join) or unlocks the room."""
    chair_role(state, actor)
    return _commit(state, replace(state, locked=locked))


def remove(state: FloorState, actor: FloorActor, code: str) -> FloorState:
    """The chair removes `code` for the rest of the meeting.

    It leaves the room, the queue and the floor, and can never rejoin nor be
    admitted again. It stays listed in `sites`, shown as removed. Removing it
    twice changes nothing; the chair cannot be removed."""
    chair_role(state, actor)
    _check_not_chair(state, code, "the chair cannot be removed")
    if code in state.removed:
        return state
    _check_site(state, code)
    return _commit(
        state,
        replace(
            state,
            present=state.present - {code},
            holder=None if state.holder == code else state.holder,
            queue=tuple(c for c in state.queue if c != code),
            refused=state.refused - {code},
            muted=state.muted - {code},
            seated=state.seated - {code},
            removed=state.removed | {code},
        ),
    )


# --- the floor -------------------------------------------------------------------


def request_floor(state: FloorState, code: str) -> FloorState:
    """`code` asks for the floor ("xin phát biểu"): it joins the end of the queue.

    The site must be connected (the request comes from its endpoint). A muted
    site may ask: asking to speak is exactly what a muted site does. Asking
    again after a refusal clears the refusal; asking twice keeps the first
    place in the queue."""
    _check_not_chair(state, code, "its voice is always on and needs no floor")
    _check_site(state, code)
    if code not in state.present:
        raise FloorError("not_present", f"{code} is not connected")
    if code == state.holder:
        raise FloorError("already_holder", f"{code} already has the floor")
    if code in state.queue:
        return state
    return _commit(
        state, replace(state, queue=(*state.queue, code), refused=state.refused - {code})
    )


def cancel_request(state: FloorState, code: str) -> FloorState:
    """`code` withdraws its request; unchanged when it was not asking."""
    _check_site(state, code)
    return _commit(state, replace(state, queue=tuple(c for c in state.queue if c != code)))


def release_floor(state: FloorState, code: str) -> FloorState:
    """The holder gives the floor back when done speaking; unchanged for anyone else."""
    _check_site(state, code)
    if state.holder != code:
        return state
    return _commit(state, replace(state, holder=None))


def grant(state: FloorState, actor: FloorActor, code: str) -> FloorState:
    """The chair gives the floor to `code`.

    `code` must be asking or connected (the chair may also call on a site
    that did not ask). A queued site that dropped may be granted: it has the
    floor when it reconnects. The site leaves the queue and its refusal and
    mute are cleared, since the floor means being heard; the previous holder
    simply loses the floor (it is not queued again, nor muted)."""
    chair_role(state, actor)
    _check_not_chair(state, code, "its voice is always on and needs no floor")
    _check_site(state, code)
    if code not in state.queue and code not in state.present:
        raise FloorError("not_present", f"{code} is neither connected nor asking for the floor")
    return _commit(
        state,
        replace(
            state,
            holder=code,
            queue=tuple(c for c in state.queue if c != code),
            refused=state.refused - {code},
            muted=state.muted - {code},
        ),
    )


def refuse(state: FloorState, actor: FloorActor, code: str) -> FloorState:
    """The chair refuses `code`'s request: out of the queue, shown as refused until it asks again.

    Refusing a site that is not asking (the holder included) is an error: the
    chair console offers "refuse" only next to a request."""
    chair_role(state, actor)
    _check_site(state, code)
    if code not in state.queue:
        raise FloorError("not_requested", f"{code} is not asking for the floor")
    return _commit(
        state,
        replace(
            state,
            queue=tuple(c for c in state.queue if c != code),
            refused=state.refused | {code},
        ),
    )


def revoke(state: FloorState, actor: FloorActor) -> FloorState:
    """The chair takes the floor back. The former holder is not muted: muting is a separate act."""
    chair_role(state, actor)
    return _commit(state, replace(state, holder=None))


# --- moderation ------------------------------------------------------------------


def mute(state: FloorState, actor: FloorActor, code: str, muted: bool) -> FloorState:
    """The chair mutes or unmutes one site, the chair itself included.

    A site that is not connected may be muted too: it comes back muted."""
    chair_role(state, actor)
    _check_site(state, code)
    new_muted = state.muted | {code} if muted else state.muted - {code}
    return _commit(state, replace(state, muted=new_muted))


def mute_all(state: FloorState, actor: FloorActor, muted: bool) -> FloorState:
    """The chair mutes or unmutes every site (connected or not) but itself and the holder.

    The chair is never touched: its own mute changes only when it mutes itself
    explicitly. The floor holder is spared when muting: "mute all" silences
    the room's background while a district speaks, and silencing the speaker
    the chair just gave the floor to would contradict that grant (the chair
    mutes the holder explicitly, or revokes, to stop it)."""
    chair_role(state, actor)
    keep = state.muted & {state.chair}
    if muted:
        spared = {state.chair} | ({state.holder} if state.holder is not None else set())
        new_muted = (state.sites - state.removed - spared) | keep
    else:
        new_muted = keep
    return _commit(state, replace(state, muted=new_muted))


# --- what clients see ----------------------------------------------------------------


def audible(state: FloorState) -> frozenset[str]:
    """Who may be heard: connected and not muted.

    In a briefing everybody present and not muted may speak; the floor only
    decides the main video. Muting is the moderation tool."""
    return state.present - state.muted


def main_video(state: FloorState, active_speaker: str | None) -> str | None:
    """The site every endpoint shows as the "floor" video, or None.

    The floor holder when there is one. A holder whose line dropped keeps the
    slot (None until it is back): showing someone else there would look like
    the floor had moved. Without a holder (open discussion), the active
    speaker, if it can be heard (connected and not muted: a muted site's lips
    moving in silence help nobody) and is not the chair, whose own video is
    shown as the chair's anyway. Else None."""
    if state.holder is not None:
        return state.holder if state.holder in state.present else None
    if (
        active_speaker is not None
        and active_speaker != state.chair
        and active_speaker in audible(state)
    ):
        return active_speaker
    return None


SiteStatusName = Literal["connected", "waiting", "removed"]


class SiteStatus(TypedDict):
    """One line of the chair console."""

    code: str
    status: SiteStatusName
    chair: bool
    muted: bool
    asking: bool
    refused: bool
    has_floor: bool


class FloorSnapshot(TypedDict):
    """The floor state as JSON for clients; `version` orders snapshots."""

    version: int
    chair: str
    holder: str | None
    queue: list[str]
    refused: list[str]
    muted: list[str]
    locked: bool
    present: list[str]
    removed: list[str]
    sites: list[SiteStatus]


def _status(state: FloorState, code: str) -> SiteStatusName:
    if code in state.removed:
        return "removed"
    return "connected" if code in state.present else "waiting"


def snapshot(state: FloorState) -> FloorSnapshot:
    """A JSON-ready view of `state`.

    Sets are sorted lists, so equal states give equal JSON. `sites` has one
    entry per site for the chair console, the chair first, then by code."""
    ordered = sorted(state.sites, key=lambda c: (c != state.chair, c))
    return {
        "version": state.version,
        "chair": state.chair,
        "holder": state.holder,
        "queue": list(state.queue),
        "refused": sorted(state.refused),
        "muted": sorted(state.muted),
        "locked": state.locked,
        "present": sorted(state.present),
        "removed": sorted(state.removed),
        "sites": [
            {
                "code": code,
                "status": _status(state, code),
                "chair": code == state.chair,
                "muted": code in state.muted,
                "asking": code in state.queue,
                "refused": code in state.refused,
                "has_floor": code == state.holder,
            }
            for code in ordered
        ],
    }
