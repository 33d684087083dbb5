"""Conference rows in the database: the conflict query, and loading for the API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Row, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.booking_rules import MAX_BUSY_SPAN, Booked, Slot
from vcbridge.core.db.models import (
    ACTIVE_STATUSES,
    BookingLock,
    Conference,
    ConferenceSeries,
    Endpoint,
    Participant,
)

SelectT = TypeVar("SelectT", bound=Select[Any])

# Occurrence windows per conflict query (a long series is checked in batches).
_WINDOWS_PER_QUERY = 40


async def lock_bookings(session: AsyncSession) -> None:
    """Serialise booking transactions: the first statement of every booking write.

    PostgreSQL holds the row lock (FOR UPDATE) until commit; SQLite already
    holds the database write lock from BEGIN IMMEDIATE."""
    await session.execute(select(BookingLock.id).where(BookingLock.id == 1).with_for_update())


async def lock_conferences(session: AsyncSession, conference_ids: Iterable[int]) -> None:
    """Lock conference rows until commit (PostgreSQL; SQLite's BEGIN IMMEDIATE
    already holds the database), in id order so two lockers cannot deadlock.

    A booking change to an existing conference takes this after the booking
    lock, so it is serialised with the lifecycle's transitions of that
    conference (see `scheduler/transitions.py`)."""
    ids = sorted(set(conference_ids))
    if ids:
        await session.execute(select(Conference.id).where(Conference.id.in_(ids))
                              .order_by(Conference.id).with_for_update())


async def booked_overlapping(
    session: AsyncSession, slots: Sequence[Slot], exclude_ids: Iterable[int] = ()
) -> list[Booked]:
    """Active conferences whose busy time overlaps any of `slots`, with their endpoints."""
    excluded = set(exclude_ids)
    rows: dict[int, tuple[Conference, set[str]]] = {}
    for first in range(0, len(slots), _WINDOWS_PER_QUERY):
        windows = [
            and_(
                Conference.busy_start < slot.end,
                Conference.busy_start > slot.busy_start - MAX_BUSY_SPAN,
                Conference.end > slot.busy_start,
            )
            for slot in slots[first : first + _WINDOWS_PER_QUERY]
        ]
        query = (
            select(Conference.id, Conference.title, Conference.start, Conference.end,
                   Conference.busy_start, Endpoint.code)
            .join(Participant, Participant.conference_id == Conference.id)
            .join(Endpoint, Endpoint.id == Participant.endpoint_id)
            .where(Conference.status.in_(ACTIVE_STATUSES), or_(*windows))
        )
        for cid, title, start, end, busy_start, code in (await session.execute(query)).all():
            if cid in excluded:
                continue
            entry = rows.setdefault(
                cid, (Conference(id=cid, title=title, start=start, end=end,
                                 busy_start=busy_start), set())
            )
            entry[1].add(code)
    return [
        Booked(c.id, c.title, c.start, c.end, c.busy_start, frozenset(codes))
        for c, codes in rows.values()
    ]


async def endpoints_by_code(session: AsyncSession, codes: Iterable[str]) -> dict[str, Endpoint]:
    """The active endpoints among `codes`, by code."""
    wanted = set(codes)
    found = await session.scalars(
        select(Endpoint).where(Endpoint.code.in_(wanted), Endpoint.active.is_(True))
    )
    return {e.code: e for e in found}


def conference_query() -> Select[Conference]:
    """The base query for conferences in API order."""
    return select(Conference).order_by(Conference.start, Conference.id)


# A conference as the list shows it, one row: what `responses.Conference.of_row` reads.
LISTED_COLUMNS = (
    Conference.id, Conference.title, Conference.agenda, Endpoint.code.label("chair"),
    Conference.start, Conference.end, Conference.setup_minutes, ConferenceSeries.rrule,
    Conference.series_id, Conference.status, Conference.cancel_reason, Conference.created_at,
    Conference.created_by, Conference.updated_at, Conference.updated_by,
)


def listing_query() -> Select[Any]:
    """The list's query in API order: plain rows, not ORM objects.

    A week of a busy year is ~190 conferences and ~700 participants; building them as
    ORM objects took ~160 ms of a loaded machine's event loop, plain rows a fraction."""
    query = cast(Select[Any], select(*LISTED_COLUMNS))
    return (
        query
        .join(Endpoint, Endpoint.id == Conference.chair_endpoint_id)
        .outerjoin(ConferenceSeries, ConferenceSeries.id == Conference.series_id)
        .order_by(Conference.start, Conference.id)
    )


async def listed_rows(
    session: AsyncSession, query: Select[Any]
) -> list[tuple[Row[Any], list[str]]]:
    """The rows of a `listing_query` and each one's participant codes (in booking order,
    as `Conference.participants`)."""
    rows = list((await session.execute(query)).all())
    codes: dict[int, list[str]] = {row.id: [] for row in rows}
    if codes:
        found = await session.execute(
            select(Participant.conference_id, Endpoint.code)
            .join(Endpoint, Endpoint.id == Participant.endpoint_id)
            .where(Participant.conference_id.in_(list(codes)))
            .order_by(Participant.id)
        )
        for conference_id, code in found:
            codes[conference_id].append(code)
    return [(row, codes[row.id]) for row in rows]


def filter_conferences(
    query: SelectT,
    *,
    endpoint_id: int | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    statuses: Sequence[str] | None = None,
    series_id: int | None = None,
) -> SelectT:
    """Narrow `query`: conferences including an endpoint, ending after `start_from`,
    starting before `start_to`, in given statuses or in one series."""
    if endpoint_id is not None:
        query = query.where(
            Conference.id.in_(
                select(Participant.conference_id).where(Participant.endpoint_id == endpoint_id)
            )
        )
    if start_from is not None:
        # The lower bound on start keeps this an index range (no conference is longer).
        query = query.where(
            Conference.end > start_from, Conference.start > start_from - MAX_BUSY_SPAN
        )
    if start_to is not None:
        query = query.where(Conference.start < start_to)
    if statuses:
        query = query.where(Conference.status.in_(statuses))
    if series_id is not None:
        query = query.where(Conference.series_id == series_id)
    return query
