"""A room's state kept in the database (`room_states`) as it changes, and restored
when the room opens again: the process was killed and restarted, or another
bridge node took the room over.

What is kept is what the chair decided and the sites asked for: the floor
holder and the queue, who is muted, the lock, who was admitted, removed or
refused, and whether the room records (with the files it recorded into). Who
is connected is not: a restored room starts empty and the sites reconnect to
their seats. A floor holder that has not reconnected yet stays the holder (its
slot stays empty until it is back, as for a line drop).

Writes go through at once, one at a time per room and the newest state last
(`StateWriter`), each in its own short transaction, so a room's changes never
wait for the database and a slow write never reorders two states.

The row names the node that holds the room. A room's first write takes the row
over (it has just restored it: a restart, or a move to this node); every later
write only goes through while the row still names this node, so a node whose
room was moved away (and that has not noticed yet) cannot overwrite what the
room's new node saves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bridge import floor_control as floor
from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import RUNNING_STATUSES, Conference, RoomState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedRoom:
    """A room's state as stored: plain, sorted values (the queue keeps its order)."""

    holder: str | None = None
    queue: tuple[str, ...] = ()
    muted: tuple[str, ...] = ()
    locked: bool = False
    recording: bool = False
    # Every file the room recorded into, oldest first; the last one while recording.
    recording_files: tuple[str, ...] = ()
    # The last file was finished and its stop reported (its process stopped in order,
    # the conference going on): the recording resumes without reporting it cut.
    recording_finished: bool = False
    sites: tuple[str, ...] = ()
    seated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    version: int = 0

    @classmethod
    def of(cls, state: floor.FloorState, recording: bool, files: Sequence[str],
           finished: bool = False) -> SavedRoom:
        """What is kept of a floor state and the room's recording."""
        return cls(holder=state.holder, queue=state.queue, muted=tuple(sorted(state.muted)),
                   locked=state.locked, recording=recording, recording_files=tuple(files),
                   recording_finished=finished,
                   sites=tuple(sorted(state.sites)), seated=tuple(sorted(state.seated)),
                   removed=tuple(sorted(state.removed)), refused=tuple(sorted(state.refused)),
                   version=state.version)


def restore_floor(saved: SavedRoom, chair: str, booked: Iterable[str]) -> floor.FloorState:
    """The floor state of a room opened again: nobody present yet, the rest as saved.

    The booking may have changed meanwhile (a site added or taken out, even the
    chair): the allowed sites are the booked ones plus those the chair admitted,
    and whatever names a site no longer allowed is dropped, so the result always
    satisfies the floor state's rules. The version goes on from the saved one, so
    a console that kept the last snapshot takes the new ones."""
    fresh = floor.new_floor(chair, booked)
    removed = frozenset(saved.removed) - {chair}
    admitted = frozenset(saved.sites) - removed
    sites = fresh.sites | admitted | (removed & frozenset(saved.sites))
    allowed = sites - removed
    queue = tuple(c for c in dict.fromkeys(saved.queue) if c in allowed and c != chair)
    holder = saved.holder if (saved.holder in allowed and saved.holder != chair
                              and saved.holder not in queue) else None
    return replace(
        fresh,
        sites=sites,
        holder=holder,
        queue=queue,
        refused=frozenset(saved.refused) & allowed - set(queue),
        muted=frozenset(saved.muted) & allowed,
        locked=saved.locked,
        removed=removed & sites,
        seated=(frozenset(saved.seated) & allowed) | {chair},
        version=max(saved.version, 0),
    )


def _saved_of(row: RoomState) -> SavedRoom:
    return SavedRoom(
        holder=row.floor_holder, queue=tuple(row.floor_queue), muted=tuple(row.muted),
        locked=row.locked, recording=row.recording,
        recording_files=tuple(row.recording_files),
        recording_finished=row.recording_finished, sites=tuple(row.sites),
        seated=tuple(row.seated), removed=tuple(row.removed), refused=tuple(row.refused),
        version=row.version)


class RoomStateStore:
    """The `room_states` rows of the rooms this process holds (`node`: its bridge node id,
    "" for the all-in-one process)."""

    def __init__(self, database: Database, clock: Clock, node: str = "") -> None:
        self.database = database
        self.clock = clock
        self.node = node

    async def load(self, conference_id: int) -> SavedRoom | None:
        """The conference's saved room state, or None when its room never saved one."""
        async with self.database.read() as session:
            row = await session.get(RoomState, conference_id)
            return None if row is None else _saved_of(row)

    async def save(self, conference_id: int, saved: SavedRoom, *, take_over: bool = True
                   ) -> bool:
        """Store `saved` as the conference's room state, held by this node (an upsert);
        with `take_over` false, only while the row still names this node. Returns whether
        it was stored."""
        values = {
            "node": self.node, "floor_holder": saved.holder, "floor_queue": list(saved.queue),
            "muted": list(saved.muted), "locked": saved.locked, "recording": saved.recording,
            "recording_files": list(saved.recording_files),
            "recording_finished": saved.recording_finished, "sites": list(saved.sites),
            "seated": list(saved.seated), "removed": list(saved.removed),
            "refused": list(saved.refused), "version": saved.version,
            "updated_at": self.clock.now(),
        }
        async with self.database.write() as session:
            insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
            stmt = insert(RoomState).values(conference_id=conference_id, **values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["conference_id"], set_=values,
                where=None if take_over else RoomState.node == self.node)
            result = await session.execute(stmt.returning(RoomState.conference_id))
            return result.first() is not None

    async def running_on(self, node: str) -> list[int]:
        """The running conferences whose room was last held by `node`."""
        async with self.database.read() as session:
            return list(await session.scalars(
                select(RoomState.conference_id)
                .join(Conference, Conference.id == RoomState.conference_id)
                .where(RoomState.node == node, Conference.status.in_(RUNNING_STATUSES))
                .order_by(RoomState.conference_id)))

    def writer(self, conference_id: int) -> StateWriter:
        """A write-through writer of one room's states."""
        return StateWriter(self, conference_id)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


class StateWriter:
    """Saves one room's states in order, the newest last, without making the room wait.

    `put` returns at once; a task writes the newest state put, then the next newest
    if another came meanwhile (states in between are superseded, never written
    after a newer one). A failed write is logged and the next state is tried."""

    def __init__(self, store: RoomStateStore, conference_id: int) -> None:
        self.store = store
        self.conference_id = conference_id
        self._latest: SavedRoom | None = None
        self._written: SavedRoom | None = None
        self._task: asyncio.Task[None] | None = None
        # The first write takes the row over; after that, writes need the row to be ours.
        self._holding = False
        # The row was taken over by another node: this room's states are not saved any more.
        self.lost = False

    def put(self, saved: SavedRoom) -> None:
        """Save `saved` soon (nothing to do when it is what was saved last)."""
        if self.lost or saved == (self._latest or self._written):
            return
        self._latest = saved
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._latest is not None:
            saved, self._latest = self._latest, None
            try:
                stored = await self.store.save(self.conference_id, saved,
                                               take_over=not self._holding)
            except Exception:
                log.exception("room %s: saving its state failed", self.conference_id)
                continue
            if not stored:
                log.warning("room %s: its state is held by another node now; not saved "
                            "here any more", self.conference_id)
                self.lost, self._latest = True, None
                return
            self._holding, self._written = True, saved

    async def flush(self) -> None:
        """Wait until every state put so far is written (or failed)."""
        while self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)
