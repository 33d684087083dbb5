"""The event bus: events persisted with a gapless sequence number, fanned out live.

Publishing writes the event in the caller's transaction, so an event exists
exactly when the change it reports was committed. Every process tails the
events table (woken at once by its own commits and, on PostgreSQL, by
NOTIFY from other processes; otherwise every second) and hands new events,
in sequence order, to its local subscribers: WebSocket clients and the
scheduler. A client that reconnects asks for everything after the last
number it saw.

Inside the service, a part that acts on events `follow`s them: a handler
called for each event of the types it names, re-subscribed after it was cut
off, with a hook to catch up from the database over the gap. The event types
and their payloads are the contract of `vcbridge/core/event_types.py`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import Event, EventSequence
from vcbridge.core.event_types import EventType

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "vcbridge_events"
POLL_SECONDS = 1.0
BATCH = 500
# A follower cut off from the bus subscribes again after this breath.
FOLLOW_RETRY_SECONDS = 0.5

EventHandler = Callable[["BusEvent"], Awaitable[None]]


@dataclass(frozen=True)
class BusEvent:
    """One event as subscribers receive it."""

    seq: int
    at: datetime
    type: str
    conference_id: int | None
    endpoint: str | None
    audience: tuple[str, ...]
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: Event) -> BusEvent:
        return cls(row.seq, row.at, row.type, row.conference_id, row.endpoint_code,
                   tuple(row.audience or ()), dict(row.data or {}))

    def to_json(self, zone: ZoneInfo) -> dict[str, Any]:
        """The wire form of the event."""
        return {
            "seq": self.seq,
            "type": self.type,
            "at": to_local_iso(self.at, zone),
            "conference": self.conference_id,
            "endpoint": self.endpoint,
            "data": self.data,
        }


@dataclass(frozen=True)
class NewEvent:
    """An event to publish (`EventBus.publish_many`); the sequence number comes later.

    `data` follows the type's payload (`vcbridge.core.event_types.EVENTS`)."""

    type: EventType
    conference_id: int | None = None
    endpoint: str | None = None
    audience: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Subscription:
    """A subscriber's bounded queue; a subscriber that falls too far behind is cut off
    (it reconnects and catches up from the table) rather than growing memory."""

    queue: asyncio.Queue[BusEvent | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=2000)
    )
    overflowed: bool = False
    # Only events this accepts are queued (an endpoint's stream wants its own events, not
    # every endpoint's: a thousand streams must not all wake for each event).
    accepts: Callable[[BusEvent], bool] | None = None


class EventBus:
    """Publishes events and delivers them, in order, to this process's subscribers."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._subscriptions: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._last_seq = 0
        self._tailer: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    # -- publishing -------------------------------------------------------

    async def publish(
        self,
        session: AsyncSession,
        type_: EventType,
        at: datetime,
        *,
        conference_id: int | None = None,
        endpoint: str | None = None,
        audience: Iterable[str] = (),
        data: dict[str, Any] | None = None,
    ) -> int:
        """Add an event to `session`'s transaction; returns its sequence number."""
        seqs = await self.publish_many(session, at, [
            NewEvent(type_, conference_id, endpoint, tuple(audience), data or {})
        ])
        return seqs[0]

    async def publish_many(
        self, session: AsyncSession, at: datetime, events: Sequence[NewEvent]
    ) -> list[int]:
        """Add `events`, in order, to `session`'s transaction; returns their sequence numbers.

        One sequence update (which locks the sequence row until commit, so
        events still commit in sequence order), one multi-row insert and one
        NOTIFY, however many events: the connect tick and the lifecycle
        publish tens at once, and every round trip is time the sequence row
        stays locked for every other publisher."""
        if not events:
            return []
        last = await session.scalar(
            update(EventSequence).where(EventSequence.id == 1)
            .values(last=EventSequence.last + len(events)).returning(EventSequence.last)
            # No ORM object holds the sequence: without this, every publish scans the
            # session's whole identity map (quadratic in a long series' occurrences).
            .execution_options(synchronize_session=False)
        )
        assert last is not None
        first = int(last) - len(events) + 1
        await session.execute(insert(Event), [
            {"seq": first + i, "at": at, "type": str(e.type), "conference_id": e.conference_id,
             "endpoint_code": e.endpoint, "audience": sorted(set(e.audience)),
             "data": dict(e.data)}
            for i, e in enumerate(events)
        ])
        if not self._database.is_sqlite:
            # Delivered to the other processes' listeners only if this transaction
            # commits; one notification wakes a listener for every event up to `last`.
            await session.execute(text("SELECT pg_notify(:c, :s)"),
                                  {"c": NOTIFY_CHANNEL, "s": str(last)})
        sync_session = session.sync_session
        if not sync_session.info.get("vcbridge_wakes_bus"):
            sync_session.info["vcbridge_wakes_bus"] = True

            def wake_after_commit(_session: object) -> None:
                sync_session.info.pop("vcbridge_wakes_bus", None)
                self._wake.set()

            sa_event.listen(sync_session, "after_commit", wake_after_commit, once=True)
        return list(range(first, int(last) + 1))

    # -- reading ------------------------------------------------------------

    async def read_after(self, seq: int, limit: int = BATCH) -> list[BusEvent]:
        """Persisted events with a sequence number above `seq`, oldest first."""
        async with self._database.read() as session:
            rows = await session.scalars(
                select(Event).where(Event.seq > seq).order_by(Event.seq).limit(limit)
            )
            return [BusEvent.from_row(r) for r in rows]

    async def newest_seq(self) -> int:
        """The newest committed sequence number."""
        async with self._database.read() as session:
            return int(await session.scalar(select(func.max(Event.seq))) or 0)

    @contextlib.asynccontextmanager
    async def subscribe(self, accepts: Callable[[BusEvent], bool] | None = None
                        ) -> AsyncIterator[Subscription]:
        """Receive every event committed from now on (that `accepts` takes, if given),
        in order, while inside the block."""
        subscription = self._add(accepts)
        try:
            yield subscription
        finally:
            self._remove(subscription)

    def follow(
        self,
        types: Iterable[EventType] | None,
        handler: EventHandler,
        *,
        on_gap: Callable[[], Awaitable[None]] | None = None,
        retry_seconds: float = FOLLOW_RETRY_SECONDS,
        name: str = "event-follower",
    ) -> Follower:
        """Call `handler` for every event of `types` (every event: None) committed from
        now on, in order, one at a time, until the returned follower is stopped.

        Subscribed before this returns, so no event committed afterwards is missed
        while the subscription lasts. A handler that raises is logged and the next
        event follows: one bad event must not stop the follower. Cut off (it fell
        behind, or the bus stopped), the follower subscribes again after
        `retry_seconds`, then awaits `on_gap()`: the events in between were missed,
        and the caller catches up from the database (its errors are logged too).
        `Follower.stop()` cancels it, the handler running at that moment included."""
        wanted = None if types is None else frozenset(types)
        accepts = None if wanted is None else (lambda event: event.type in wanted)
        follower = Follower(self, handler, accepts, on_gap, retry_seconds, name)
        follower.subscription = self._add(accepts)
        follower.task = asyncio.get_running_loop().create_task(follower.run(), name=name)
        follower.task.add_done_callback(lambda _task: follower.unsubscribe())
        return follower

    def _add(self, accepts: Callable[[BusEvent], bool] | None) -> Subscription:
        subscription = Subscription(accepts=accepts)
        self._subscriptions.add(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def last_seq(self) -> int:
        """The newest sequence number delivered to subscribers."""
        return self._last_seq

    # -- running ------------------------------------------------------------

    async def start(self) -> None:
        """Start tailing from the newest event (and listening on PostgreSQL)."""
        self._last_seq = await self.newest_seq()
        if not self._database.is_sqlite:
            url = make_url(self._database.url).set(drivername="postgresql")
            self._listener = await asyncpg.connect(url.render_as_string(hide_password=False))
            await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self._tailer = asyncio.create_task(self._tail(), name="event-bus-tailer")

    async def stop(self) -> None:
        """Stop tailing; subscribers get an end-of-stream marker."""
        if self._tailer is not None:
            self._tailer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tailer
        if self._listener is not None:
            await self._listener.close()
        for subscription in list(self._subscriptions):
            _offer(subscription, None)

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def _tail(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            try:
                await self._deliver_new()
            except Exception:  # a database hiccup must not end the stream for good
                log.exception("event bus: reading new events failed; retrying")
                await asyncio.sleep(POLL_SECONDS)

    async def _deliver_new(self) -> None:
        while True:
            events = await self.read_after(self._last_seq)
            self._deliver(events)
            if len(events) < BATCH:
                return

    def _deliver(self, events: Sequence[BusEvent]) -> None:
        for bus_event in events:
            self._last_seq = bus_event.seq
            for subscription in list(self._subscriptions):
                _offer(subscription, bus_event)


@dataclass(eq=False)
class Follower:
    """A running `EventBus.follow`."""

    bus: EventBus
    handler: EventHandler
    accepts: Callable[[BusEvent], bool] | None
    on_gap: Callable[[], Awaitable[None]] | None
    retry_seconds: float
    name: str
    subscription: Subscription | None = None
    task: asyncio.Task[None] | None = None
    # How many times it was cut off and subscribed again (tests, logs).
    gaps: int = 0

    async def stop(self) -> None:
        """Cancel the follower and wait for it to end."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.unsubscribe()

    async def wait(self) -> None:
        """Wait until the follower ends (it ends only when stopped or cancelled)."""
        if self.task is not None:
            await self.task

    def unsubscribe(self) -> None:
        """Stop queueing events for this follower."""
        if self.subscription is not None:
            self.bus._remove(self.subscription)

    async def run(self) -> None:
        """The follower's task: handle events; after a cut-off, subscribe again."""
        while True:
            assert self.subscription is not None
            queue = self.subscription.queue
            while (event := await queue.get()) is not None:
                try:
                    await self.handler(event)
                except Exception:  # one bad event must not stop the follower
                    log.exception("%s: event %s (%s) not handled", self.name, event.seq,
                                  event.type)
            self.unsubscribe()
            log.warning("%s: cut off from the event bus; subscribing again", self.name)
            await asyncio.sleep(self.retry_seconds)
            self.subscription = self.bus._add(self.accepts)
            self.gaps += 1
            if self.on_gap is not None:
                try:
                    await self.on_gap()
                except Exception:
                    log.exception("%s: catching up after a gap failed", self.name)


def _offer(subscription: Subscription, bus_event: BusEvent | None) -> None:
    if subscription.overflowed:
        return
    if (bus_event is not None and subscription.accepts is not None
            and not subscription.accepts(bus_event)):
        return
    try:
        subscription.queue.put_nowait(bus_event)
    except asyncio.QueueFull:
        subscription.overflowed = True
        # Make room for the end marker so the consumer notices and closes.
        with contextlib.suppress(asyncio.QueueEmpty):
            subscription.queue.get_nowait()
        subscription.queue.put_nowait(None)
