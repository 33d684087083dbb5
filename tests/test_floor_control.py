"""The floor and moderation state machine: pure, so each test is a few function calls."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable

import pytest

from bridge.floor_control import (
    FloorError,
    FloorState,
    admit,
    audible,
    cancel_request,
    chair_role,
    grant,
    join,
    leave,
    lock,
    main_video,
    mute,
    mute_all,
    new_floor,
    refuse,
    release_floor,
    remove,
    request_floor,
    revoke,
    site_role,
    snapshot,
)
from vcbridge.core.audit import Actor

CHAIR = "UBND-TINH"
A, B, C, D = "TP-THANH-HOA", "TP-SAM-SON", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT"
BOOKED = (A, B, C, D)
GUEST = "SO-Y-TE"  # not booked: needs the chair's admit


def room(*present: str) -> FloorState:
    """The booked room with the chair and `present` connected."""
    state = new_floor(CHAIR, BOOKED)
    for code in (CHAIR, *present):
        state = join(state, code)
    return state


def raises(code: str, action: Callable[[], object]) -> FloorError:
    with pytest.raises(FloorError) as info:
        action()
    assert info.value.code == code, info.value
    assert str(info.value)  # a message for people too
    return info.value


# --- the room -------------------------------------------------------------------


def test_new_floor() -> None:
    state = new_floor(CHAIR, BOOKED)
    assert state.chair == CHAIR
    assert state.sites == {CHAIR, *BOOKED}
    assert state.seated == {CHAIR}
    assert state.present == frozenset()
    assert state.holder is None
    assert state.queue == ()
    assert not state.locked
    assert state.version == 0
    # The chair may be booked as a participant too: no duplicate.
    assert new_floor(CHAIR, (CHAIR, A)).sites == {CHAIR, A}


@pytest.mark.parametrize(("chair", "sites"), [("", (A,)), (CHAIR, (A, ""))])
def test_new_floor_rejects_empty_codes(chair: str, sites: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="empty"):
        new_floor(chair, sites)


@pytest.mark.parametrize(
    "changes",
    [
        {"present": frozenset({GUEST})},
        {"queue": (A, A)},
        {"queue": (CHAIR,)},
        {"holder": CHAIR},
        {"holder": GUEST},
        {"holder": A, "queue": (A,)},
        {"removed": frozenset({CHAIR})},
        {"removed": frozenset({A}), "present": frozenset({A})},
        {"removed": frozenset({A}), "holder": A},
        {"refused": frozenset({A}), "queue": (A,)},
        {"seated": frozenset({A})},
        {"version": -1},
    ],
)
def test_inconsistent_states_are_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(new_floor(CHAIR, BOOKED), **changes)  # type: ignore[arg-type]


def test_join_and_leave() -> None:
    state = room()
    state = join(state, A)
    assert state.present == {CHAIR, A}
    assert join(state, A) is state  # a duplicate event
    state = leave(state, A)
    assert state.present == {CHAIR}
    assert leave(state, A) is state
    assert leave(state, "NOBODY") is state


def test_unknown_site_cannot_join_until_admitted() -> None:
    state = room()
    raises("unknown_site", lambda: join(state, GUEST))
    state = admit(state, CHAIR, GUEST)
    assert GUEST in state.sites
    state = join(state, GUEST)
    assert GUEST in state.present
    assert admit(state, CHAIR, GUEST) is state
    raises("invalid_code", lambda: admit(state, CHAIR, ""))


def test_lock_keeps_reconnecting_sites_in_and_new_ones_out() -> None:
    state = room(A, B)
    state = leave(state, B)  # B's line drops before the lock
    state = lock(state, CHAIR, True)
    assert state.locked
    # A drops and reconnects; B comes back: both keep their seats.
    state = join(leave(state, A), A)
    state = join(state, B)
    assert state.present == {CHAIR, A, B}
    # C was booked but never came: it is a newcomer now.
    error = raises("locked", lambda: join(state, C))
    assert C in str(error)
    # The chair's admit gives a seat, through the lock: a booked site...
    state = admit(state, CHAIR, C)
    state = join(state, C)
    assert C in state.present
    # ... or one that was never booked.
    state = admit(state, CHAIR, GUEST)
    state = join(state, GUEST)
    assert GUEST in state.present
    # Unlocked, D may come in.
    raises("locked", lambda: join(state, D))
    state = lock(state, CHAIR, False)
    assert D in join(state, D).present
    assert lock(state, CHAIR, False) is state


def test_the_chair_always_gets_back_into_its_locked_room() -> None:
    state = lock(new_floor(CHAIR, BOOKED), CHAIR, True)
    assert join(state, CHAIR).present == {CHAIR}


def test_removed_site_never_comes_back() -> None:
    state = room(A, B)
    state = request_floor(state, B)
    state = grant(state, CHAIR, A)
    state = mute(state, CHAIR, B, True)
    state = remove(state, CHAIR, A)
    state = remove(state, CHAIR, B)
    assert state.removed == {A, B}
    assert state.present == {CHAIR}
    assert state.holder is None
    assert state.queue == ()
    assert state.muted == frozenset()
    assert {A, B} <= state.sites  # still listed, as removed
    assert remove(state, CHAIR, A) is state
    raises("removed", lambda: join(state, A))
    raises("removed", lambda: admit(state, CHAIR, A))
    raises("removed", lambda: request_floor(state, A))
    raises("removed", lambda: grant(state, CHAIR, A))
    raises("removed", lambda: mute(state, CHAIR, A, False))
    # A removed site that was not connected is just as gone.
    state = remove(state, CHAIR, C)
    raises("removed", lambda: join(state, C))
    # Even in an unlocked room, and after unlocking.
    assert not state.locked
    raises("removed", lambda: join(lock(lock(state, CHAIR, True), CHAIR, False), C))


def test_the_chair_cannot_be_removed() -> None:
    state = room(A)
    raises("is_chair", lambda: remove(state, CHAIR, CHAIR))
    raises("unknown_site", lambda: remove(state, CHAIR, GUEST))


# --- the floor ----------------------------------------------------------------------


def test_a_briefing() -> None:
    state = room(A, B, C)
    # The chair opens; A asks for the floor ("xin phát biểu").
    state = request_floor(state, A)
    assert state.queue == (A,)
    # B asks too, then A is given the floor.
    state = request_floor(state, B)
    assert state.queue == (A, B)
    state = grant(state, CHAIR, A)
    assert state.holder == A
    assert state.queue == (B,)
    assert main_video(state, active_speaker=C) == A  # the floor beats the loudest
    # C asks while A speaks; the chair moves the floor to B.
    state = request_floor(state, C)
    assert state.queue == (B, C)
    state = grant(state, CHAIR, B)
    assert state.holder == B
    assert state.queue == (C,)  # A lost the floor and is not queued again
    assert A not in state.muted  # nor silenced: muting is another act
    # The chair calls on C, then takes the floor back.
    state = grant(state, CHAIR, C)
    assert (state.holder, state.queue) == (C, ())
    state = revoke(state, CHAIR)
    assert state.holder is None
    assert revoke(state, CHAIR) is state
    # Open discussion: the main video follows the active speaker.
    assert main_video(state, active_speaker=A) == A


def test_refused_then_asks_again() -> None:
    state = room(A, B)
    state = request_floor(state, A)
    state = request_floor(state, B)
    state = refuse(state, CHAIR, A)
    assert state.queue == (B,)
    assert state.refused == {A}
    assert snapshot(state)["refused"] == [A]
    raises("not_requested", lambda: refuse(state, CHAIR, A))
    # Asking again clears the refusal and queues A after B.
    state = request_floor(state, A)
    assert state.refused == frozenset()
    assert state.queue == (B, A)
    # Refused again, then given the floor anyway: the refusal is gone.
    state = refuse(state, CHAIR, A)
    state = grant(state, CHAIR, A)
    assert state.holder == A
    assert state.refused == frozenset()


def test_refuse_needs_a_request() -> None:
    state = grant(room(A, B), CHAIR, A)
    raises("not_requested", lambda: refuse(state, CHAIR, B))
    raises("not_requested", lambda: refuse(state, CHAIR, A))  # the holder: use revoke
    raises("unknown_site", lambda: refuse(state, CHAIR, GUEST))


def test_request_floor_rules() -> None:
    state = room(A, B)
    raises("is_chair", lambda: request_floor(state, CHAIR))
    raises("not_present", lambda: request_floor(state, C))
    raises("unknown_site", lambda: request_floor(state, GUEST))
    state = request_floor(state, A)
    assert request_floor(state, A) is state  # keeps its place
    state = grant(state, CHAIR, A)
    raises("already_holder", lambda: request_floor(state, A))
    # A muted site may ask: that is how it asks to be heard.
    state = mute(state, CHAIR, B, True)
    assert request_floor(state, B).queue == (B,)


def test_cancel_request_and_release_floor() -> None:
    state = room(A, B)
    state = request_floor(request_floor(state, A), B)
    state = cancel_request(state, A)
    assert state.queue == (B,)
    assert cancel_request(state, A) is state
    raises("unknown_site", lambda: cancel_request(state, GUEST))
    # The holder hands the floor back when done; nobody else can.
    state = grant(state, CHAIR, B)
    assert release_floor(state, A) is state
    state = release_floor(state, B)
    assert state.holder is None
    assert release_floor(state, B) is state


def test_grant_rules() -> None:
    state = room(A, B)
    raises("is_chair", lambda: grant(state, CHAIR, CHAIR))
    raises("unknown_site", lambda: grant(state, CHAIR, GUEST))
    raises("not_present", lambda: grant(state, CHAIR, C))  # not connected, not asking
    # The chair may call on a connected site that did not ask.
    assert grant(state, CHAIR, B).holder == B
    # Granting unmutes: the floor means being heard.
    state = mute(state, CHAIR, A, True)
    state = grant(state, CHAIR, A)
    assert A not in state.muted
    assert A in audible(state)
    assert grant(state, CHAIR, A) is state  # already holding, nothing to do
    # ... but a muted holder granted again is unmuted.
    muted_holder = mute(state, CHAIR, A, True)
    assert grant(muted_holder, CHAIR, A).muted == frozenset()


def test_queued_site_that_dropped_can_be_granted() -> None:
    state = room(A)
    state = leave(request_floor(state, A), A)
    assert state.queue == (A,)  # the request survives the drop
    state = grant(state, CHAIR, A)
    assert state.holder == A
    assert main_video(state, None) is None  # the slot waits for A
    assert main_video(join(state, A), None) == A


def test_dropped_holder_keeps_the_floor_and_its_state_on_rejoin() -> None:
    state = room(A, B)
    state = request_floor(state, B)
    state = mute(state, CHAIR, B, True)
    state = grant(state, CHAIR, A)
    state = leave(leave(state, A), B)
    assert state.holder == A
    assert state.queue == (B,)
    assert state.muted == {B}
    # While the holder is away nobody else takes its slot.
    assert main_video(state, active_speaker=C) is None
    state = join(join(state, A), B)
    assert state.holder == A
    assert state.queue == (B,)
    assert state.muted == {B}
    assert main_video(state, active_speaker=B) == A


# --- moderation -------------------------------------------------------------------------


def test_mute_and_unmute_one_site() -> None:
    state = room(A, B)
    assert audible(state) == {CHAIR, A, B}
    state = mute(state, CHAIR, A, True)
    assert audible(state) == {CHAIR, B}
    assert mute(state, CHAIR, A, True) is state
    state = mute(state, CHAIR, A, False)
    assert audible(state) == {CHAIR, A, B}
    # A site that is not connected can be muted ahead: it comes back muted.
    state = join(mute(state, CHAIR, C, True), C)
    assert C in state.present
    assert C not in audible(state)
    raises("unknown_site", lambda: mute(state, CHAIR, GUEST, True))


def test_mute_all_spares_the_chair_and_the_holder() -> None:
    state = room(A, B, C)
    state = grant(state, CHAIR, A)
    state = mute_all(state, CHAIR, True)
    # Every other site, connected or not (D comes in muted).
    assert state.muted == {B, C, D}
    assert audible(state) == {CHAIR, A}
    assert mute_all(state, CHAIR, True) is state
    state = mute_all(state, CHAIR, False)
    assert state.muted == frozenset()
    assert audible(state) == {CHAIR, A, B, C}
    assert mute_all(state, CHAIR, False) is state


def test_mute_all_leaves_removed_sites_out() -> None:
    state = mute_all(remove(room(A, B), CHAIR, B), CHAIR, True)
    assert state.muted == {A, C, D}


def test_the_chair_mutes_itself_only_explicitly() -> None:
    state = room(A)
    state = mute_all(state, CHAIR, True)
    assert CHAIR not in state.muted
    state = mute(state, CHAIR, CHAIR, True)
    assert CHAIR not in audible(state)
    # "Unmute all" is about the districts: the chair stays as it chose.
    state = mute_all(state, CHAIR, False)
    assert state.muted == {CHAIR}
    state = mute(state, CHAIR, CHAIR, False)
    assert audible(state) == {CHAIR, A}


def test_a_full_province_muted_at_once() -> None:
    districts = [f"HUYEN-{i:02d}" for i in range(30)]
    state = new_floor(CHAIR, districts)
    for code in [CHAIR, *districts]:
        state = join(state, code)
    version = state.version
    state = mute_all(state, CHAIR, True)
    assert state.version == version + 1
    assert audible(state) == {CHAIR}
    assert len(state.muted) == 30


# --- authority ------------------------------------------------------------------------

CHAIR_ACTIONS: dict[str, Callable[[FloorState, str], FloorState]] = {
    "admit": lambda state, actor: admit(state, actor, GUEST),
    "grant": lambda state, actor: grant(state, actor, C),
    "refuse": lambda state, actor: refuse(state, actor, C),
    "revoke": lambda state, actor: revoke(state, actor),
    "mute": lambda state, actor: mute(state, actor, B, True),
    "unmute": lambda state, actor: mute(state, actor, B, False),
    "mute_all": lambda state, actor: mute_all(state, actor, True),
    "unmute_all": lambda state, actor: mute_all(state, actor, False),
    "lock": lambda state, actor: lock(state, actor, True),
    "unlock": lambda state, actor: lock(state, actor, False),
    "remove": lambda state, actor: remove(state, actor, B),
}


@pytest.mark.parametrize("action", CHAIR_ACTIONS.values(), ids=CHAIR_ACTIONS.keys())
@pytest.mark.parametrize("actor", [A, B, D, GUEST, "", "ubnd-tinh"])
def test_chair_actions_refused_to_anyone_else(
    action: Callable[[FloorState, str], FloorState], actor: str
) -> None:
    state = mute(grant(request_floor(room(A, B, C), A), CHAIR, A), CHAIR, B, True)
    state = request_floor(state, C)
    before = snapshot(state)
    raises("not_chair", lambda: action(state, actor))
    assert snapshot(state) == before
    # The same action by the chair is accepted.
    action(state, CHAIR)


def test_not_chair_comes_before_any_other_error() -> None:
    state = room(A)
    # Unknown targets, a removed one, the chair itself: a district hears only "not_chair".
    raises("not_chair", lambda: grant(state, A, GUEST))
    raises("not_chair", lambda: remove(state, A, CHAIR))
    raises("not_chair", lambda: refuse(state, A, B))
    raises("not_chair", lambda: mute(remove(state, CHAIR, B), A, B, True))


def test_chair_role() -> None:
    state = room(A)
    chair_role(state, CHAIR)  # no error
    # Authority is the code, not the connection: the chair's console works while it reconnects.
    chair_role(leave(state, CHAIR), CHAIR)
    error = raises("not_chair", lambda: chair_role(state, A))
    assert CHAIR in str(error)


BOOKER = Actor(name="booker1", role="booker")


@pytest.mark.parametrize("action", CHAIR_ACTIONS.values(), ids=CHAIR_ACTIONS.keys())
def test_a_moderator_may_do_every_chair_action_as_the_chair_would(
    action: Callable[[FloorState, Actor | str], FloorState]
) -> None:
    state = mute(grant(request_floor(room(A, B, C), A), CHAIR, A), CHAIR, B, True)
    state = request_floor(state, C)
    assert action(state, BOOKER) == action(state, CHAIR)
    # Also while the chair endpoint itself is away: authority is not presence.
    away = leave(state, CHAIR)
    assert action(away, BOOKER) == action(away, CHAIR)


def test_a_moderator_is_not_a_site() -> None:
    state = grant(request_floor(room(A), A), BOOKER, A)
    assert state.holder == A
    # No seat, no floor of its own, never among the sites.
    for own in (request_floor, cancel_request, release_floor):
        error = raises("not_site", lambda own=own: own(state, site_role(BOOKER)))
        assert "booker1" in str(error)
    assert site_role(A) == A
    assert "booker1" not in json.dumps(snapshot(state))
    # The other rules still hold for it: nothing to refuse, the chair stays in.
    raises("not_requested", lambda: refuse(state, BOOKER, B))
    raises("is_chair", lambda: remove(state, BOOKER, CHAIR))
    raises("unknown_site", lambda: grant(state, BOOKER, GUEST))


# --- versions -------------------------------------------------------------------------


def test_version_counts_changes_exactly() -> None:
    state = room()
    v = state.version
    assert v == 1  # the chair joined
    steps: list[tuple[Callable[[FloorState], FloorState], bool]] = [
        (lambda s: join(s, A), True),
        (lambda s: join(s, A), False),
        (lambda s: request_floor(s, A), True),
        (lambda s: request_floor(s, A), False),
        (lambda s: grant(s, CHAIR, A), True),
        (lambda s: grant(s, CHAIR, A), False),
        (lambda s: mute(s, CHAIR, B, True), True),
        (lambda s: mute(s, CHAIR, B, True), False),
        (lambda s: mute_all(s, CHAIR, False), True),
        (lambda s: mute_all(s, CHAIR, False), False),
        (lambda s: lock(s, CHAIR, True), True),
        (lambda s: lock(s, CHAIR, True), False),
        (lambda s: leave(s, A), True),
        (lambda s: leave(s, A), False),
        (lambda s: revoke(s, CHAIR), True),
        (lambda s: revoke(s, CHAIR), False),
        (lambda s: remove(s, CHAIR, A), True),
        (lambda s: remove(s, CHAIR, A), False),
    ]
    for step, changes in steps:
        new = step(state)
        if changes:
            assert new.version == state.version + 1
            assert new != state
        else:
            assert new is state
        state = new
    assert state.version == v + sum(changes for _, changes in steps)


Step = Callable[[FloorState, str, str, bool], FloorState]

# Every action as (state, actor, code, flag) -> state, for the random walk, with
# weights that keep the final ones (remove, lock) rare so the room stays lively.
SITE_STEPS: dict[str, tuple[Step, int]] = {
    "join": (lambda state, actor, code, flag: join(state, code), 10),
    "leave": (lambda state, actor, code, flag: leave(state, code), 5),
    "request_floor": (lambda state, actor, code, flag: request_floor(state, code), 10),
    "cancel_request": (lambda state, actor, code, flag: cancel_request(state, code), 3),
    "release_floor": (lambda state, actor, code, flag: release_floor(state, code), 3),
}
CHAIR_STEPS: dict[str, tuple[Step, int]] = {
    "admit": (lambda state, actor, code, flag: admit(state, actor, code), 2),
    "grant": (lambda state, actor, code, flag: grant(state, actor, code), 8),
    "refuse": (lambda state, actor, code, flag: refuse(state, actor, code), 5),
    "revoke": (lambda state, actor, code, flag: revoke(state, actor), 3),
    "mute": (lambda state, actor, code, flag: mute(state, actor, code, flag), 6),
    "mute_all": (lambda state, actor, code, flag: mute_all(state, actor, flag), 2),
    "lock": (lambda state, actor, code, flag: lock(state, actor, flag), 1),
    "remove": (lambda state, actor, code, flag: remove(state, actor, code), 1),
}


@pytest.mark.parametrize("seed", range(5))
def test_random_walk_keeps_the_rules(seed: int) -> None:
    """Random actions, valid or not: errors change nothing, no-ops return the same
    object, every change is exactly one version, and the invariants hold."""
    rng = random.Random(seed)
    codes = [CHAIR, *BOOKED, GUEST]
    steps = {**SITE_STEPS, **CHAIR_STEPS}
    names = list(steps)
    weights = [weight for _, weight in steps.values()]
    state = new_floor(CHAIR, BOOKED)
    outcomes = {"error": 0, "same": 0, "changed": 0}
    for _ in range(1000):
        actor = CHAIR if rng.random() < 0.8 else rng.choice(codes)
        code = rng.choice(codes)
        flag = rng.random() < 0.5
        (name,) = rng.choices(names, weights)
        before = snapshot(state)
        try:
            new = steps[name][0](state, actor, code, flag)
        except FloorError as error:
            outcomes["error"] += 1
            assert (error.code == "not_chair") == (actor != CHAIR and name in CHAIR_STEPS)
            assert snapshot(state) == before
            continue
        if new is state:
            outcomes["same"] += 1
        else:
            outcomes["changed"] += 1
            assert new.version == state.version + 1
            assert dataclasses.replace(new, version=state.version) != state
        # The rules clients rely on (the constructor checks the rest).
        assert audible(new) <= new.present
        # Only an explicit mute of the chair changes the chair's mute.
        chair_muted = flag if name == "mute" and code == CHAIR else CHAIR in state.muted
        assert (CHAIR in new.muted) == chair_muted
        assert main_video(new, code) in ({new.holder, None} if new.holder else {code, None})
        state = new
    assert min(outcomes.values()) > 50, outcomes


# --- what clients see ------------------------------------------------------------------


def test_audible_is_present_and_not_muted() -> None:
    state = mute(mute(room(A, B), CHAIR, A, True), CHAIR, C, True)
    assert audible(state) == {CHAIR, B}
    assert audible(leave(state, B)) == {CHAIR}


def test_main_video() -> None:
    state = room(A, B)
    assert main_video(state, None) is None
    assert main_video(state, A) == A
    assert main_video(state, CHAIR) is None  # the chair is shown as the chair
    assert main_video(state, C) is None  # not connected
    assert main_video(state, GUEST) is None
    assert main_video(mute(state, CHAIR, A, True), A) is None  # cannot be heard
    held = grant(state, CHAIR, B)
    assert main_video(held, A) == B
    assert main_video(held, None) == B
    assert main_video(revoke(held, CHAIR), A) == A


def test_snapshot() -> None:
    state = room(A, B, C)
    state = request_floor(state, C)
    state = request_floor(state, A)
    state = refuse(state, CHAIR, A)
    state = grant(request_floor(state, B), CHAIR, B)
    state = request_floor(state, A)
    state = mute(state, CHAIR, C, True)
    state = lock(state, CHAIR, True)
    state = leave(state, C)
    state = remove(state, CHAIR, D)
    state = refuse(state, CHAIR, A)
    snap = snapshot(state)
    assert json.loads(json.dumps(snap)) == snap  # JSON-ready as is
    assert {k: v for k, v in snap.items() if k != "sites"} == {
        "version": state.version,
        "chair": CHAIR,
        "holder": B,
        "queue": [C],
        "refused": [A],
        "muted": [C],
        "locked": True,
        "present": sorted([CHAIR, A, B]),
        "removed": [D],
    }
    sites = {site["code"]: site for site in snap["sites"]}
    assert [site["code"] for site in snap["sites"]] == [CHAIR, *sorted(BOOKED)]
    no_flags = {"chair": False, "muted": False, "asking": False, "refused": False}
    assert sites[CHAIR] == {
        "code": CHAIR,
        "status": "connected",
        **no_flags,
        "chair": True,
        "has_floor": False,
    }
    assert sites[A] == {
        "code": A,
        "status": "connected",
        **no_flags,
        "refused": True,
        "has_floor": False,
    }
    assert sites[B] == {"code": B, "status": "connected", **no_flags, "has_floor": True}
    assert sites[C] == {
        "code": C,
        "status": "waiting",  # dropped: waiting to come back, request and mute kept
        **no_flags,
        "muted": True,
        "asking": True,
        "has_floor": False,
    }
    assert sites[D] == {"code": D, "status": "removed", **no_flags, "has_floor": False}


def test_snapshot_of_a_fresh_room() -> None:
    snap = snapshot(new_floor(CHAIR, (B, A)))
    assert snap["version"] == 0
    assert snap["present"] == []
    assert snap["holder"] is None
    assert [(s["code"], s["status"]) for s in snap["sites"]] == [
        (CHAIR, "waiting"),
        (B, "waiting"),  # TP-SAM-SON
        (A, "waiting"),  # TP-THANH-HOA
    ]
