"""Login rate limiting, held in the database so that every process shares it.

Each attempt has two keys:

- the user name from one client address: `max_failures` failures are free,
  then each next attempt from that address must wait `backoff`, doubling up
  to `backoff_max`; forgotten `backoff_reset` after the last failure, or at a
  success. Someone elsewhere has keys of his own, so he cannot lock the real
  user out; he can only slow himself down.
- the client address: at most `address_max_failures` failures per window,
  whatever the user names (one address trying many names).

No limit counts one user name over all addresses: a stranger could then
lock anyone out. Guessing spread over many addresses shows in the failed-login
metric (and its alert) and in the audit log instead, and Argon2 makes each
guess expensive.

An attempt is reserved before its password is checked: counted as a failure
in a short transaction that locks the key rows (PostgreSQL: the rows stay
locked until commit; SQLite: write transactions begin IMMEDIATE), and
forgiven if the password was right. Parallel attempts are therefore counted
one after the other, and no more than the limit reach the password check."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.core.clock import Clock
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import LoginThrottle
from vcbridge.core.settings import Settings

log = logging.getLogger(__name__)

THROTTLE: Table = LoginThrottle.__table__  # type: ignore[assignment]
# The longest backoff exponent computed (2**40 s is far beyond any cap).
MAX_DOUBLINGS = 40


class Reason(enum.StrEnum):
    """Why a login was refused (the `reason` label of the refused-logins metric)."""

    BACKOFF = "backoff"  # the user name from this address is in backoff
    ADDRESS = "address"  # this address failed too often, whatever the user names


@dataclass(frozen=True)
class LoginPolicy:
    """The limits, in seconds (from the `login_*` settings)."""

    max_failures: int = 5
    backoff: float = 1.0
    backoff_max: float = 300.0
    backoff_reset: float = 3600.0
    address_max_failures: int = 20
    address_window: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        """The policy of `settings`."""
        return cls(
            max_failures=settings.login_max_failures,
            backoff=settings.login_backoff_seconds,
            backoff_max=settings.login_backoff_max_seconds,
            backoff_reset=settings.login_backoff_reset_seconds,
            address_max_failures=settings.login_address_max_failures,
            address_window=settings.login_window_seconds,
        )

    def backoff_after(self, failures: int) -> float:
        """Seconds the next attempt waits after `failures` failures (0: no wait)."""
        if failures < self.max_failures:
            return 0.0
        doublings = min(failures - self.max_failures, MAX_DOUBLINGS)
        return float(min(self.backoff * 2**doublings, self.backoff_max))


@dataclass(frozen=True)
class Counts:
    """One key's row."""

    failures: int
    window_start: datetime
    blocked_until: datetime | None
    expires_at: datetime


@dataclass(frozen=True)
class Refused:
    """The attempt may not be made now."""

    reason: Reason
    retry_after: float  # seconds


@dataclass(frozen=True)
class Reserved:
    """The attempt is counted as a failure until forgiven."""

    user_key: str
    address_key: str
    user_failures: int  # this attempt's number among the name's failures from the address
    address_failures: int  # its number among the address's failures in the window
    address_window_start: datetime

    def crossed(self, policy: LoginPolicy) -> list[Reason]:
        """The limits this attempt, having failed, brought its keys up to."""
        reasons = []
        if self.user_failures == policy.max_failures:
            reasons.append(Reason.BACKOFF)
        if self.address_failures == policy.address_max_failures:
            reasons.append(Reason.ADDRESS)
        return reasons


def user_key(username: str, remote: str) -> str:
    """The key of a user name tried from one address."""
    return f"u|{remote[:64]}|{username.lower()[:64]}"


def address_key(remote: str) -> str:
    """The key of a client address."""
    return f"a|{remote[:64]}"


def decide(
    policy: LoginPolicy, user: Counts, address: Counts, now: datetime
) -> tuple[Counts, Counts] | Refused:
    """The two keys' rows with this attempt counted, or why it is refused (pure)."""
    if user.expires_at <= now:
        user = Counts(0, now, None, now)
    if address.expires_at <= now or now >= address.window_start + timedelta(
        seconds=policy.address_window
    ):
        address = Counts(0, now, None, now)
    if user.blocked_until is not None and now < user.blocked_until:
        return Refused(Reason.BACKOFF, (user.blocked_until - now).total_seconds())
    if address.failures >= policy.address_max_failures:
        window_end = address.window_start + timedelta(seconds=policy.address_window)
        return Refused(Reason.ADDRESS, (window_end - now).total_seconds())
    failures = user.failures + 1
    wait = policy.backoff_after(failures)
    user = replace(
        user,
        failures=failures,
        blocked_until=now + timedelta(seconds=wait) if wait else None,
        expires_at=now + timedelta(seconds=policy.backoff_reset),
    )
    address = replace(
        address,
        failures=address.failures + 1,
        expires_at=address.window_start + timedelta(seconds=policy.address_window),
    )
    return user, address


@dataclass
class LoginStats:
    """Counts of this process since it started, read by the metrics."""

    failures: int = 0
    refused: dict[Reason, int] = field(default_factory=lambda: dict.fromkeys(Reason, 0))


class LoginLimiter:
    """Reserves login attempts in the `login_throttle` table (see the module docstring).

    Expired rows are deleted in bounded batches, at most every
    `cleanup_seconds` or every `cleanup_every` reservations of this process."""

    def __init__(
        self,
        policy: LoginPolicy,
        *,
        cleanup_seconds: float = 60.0,
        cleanup_every: int = 500,
        cleanup_batch: int = 1000,
    ) -> None:
        self.policy = policy
        self.stats = LoginStats()
        self.cleanup_seconds = cleanup_seconds
        self.cleanup_every = cleanup_every
        self.cleanup_batch = cleanup_batch
        # time.monotonic() of the next cleanup done by `reserve`.
        self.next_cleanup = time.monotonic()
        self._since_cleanup = 0

    async def reserve(
        self, database: Database, username: str, remote: str, clock: Clock
    ) -> Reserved | Refused:
        """Count an attempt of `username` from `remote` before its password is checked."""
        await self._maybe_clean(database, clock.now())
        keys = user_key(username, remote), address_key(remote)
        async with database.write() as session:
            # Always the address row first (`forgive` too): two attempts never deadlock.
            address = await _lock(session, keys[1], clock.now())
            user = await _lock(session, keys[0], clock.now())
            now = clock.now()  # once the rows are ours: what waited is judged by then
            verdict = decide(self.policy, user, address, now)
            if isinstance(verdict, Refused):
                self.stats.refused[verdict.reason] += 1
                return verdict
            for key, counts in zip(keys, verdict, strict=True):
                await session.execute(
                    update(THROTTLE).where(THROTTLE.c.key == key).values(
                        failures=counts.failures, window_start=counts.window_start,
                        blocked_until=counts.blocked_until, expires_at=counts.expires_at,
                    )
                )
        user, address = verdict
        return Reserved(keys[0], keys[1], user.failures, address.failures, address.window_start)

    def failed(self) -> None:
        """Note a failed login (the reservation stays counted)."""
        self.stats.failures += 1

    async def forgive(self, session: AsyncSession, reserved: Reserved) -> None:
        """Undo a reservation whose password was right: the user name's backoff is cleared."""
        # The address row first, in the order `reserve` locks them: no deadlock.
        await session.execute(
            update(THROTTLE)
            .where(THROTTLE.c.key == reserved.address_key,
                   THROTTLE.c.window_start == reserved.address_window_start,
                   THROTTLE.c.failures > 0)
            .values(failures=THROTTLE.c.failures - 1)
        )
        await session.execute(delete(THROTTLE).where(THROTTLE.c.key == reserved.user_key))

    async def cleanup(self, database: Database, now: datetime) -> int:
        """Delete up to `cleanup_batch` expired rows; the number deleted."""
        expired = (select(THROTTLE.c.key).where(THROTTLE.c.expires_at <= now)
                   .limit(self.cleanup_batch))
        if not database.is_sqlite:
            # Rows another attempt holds are left for next time: cleaning never waits.
            expired = expired.with_for_update(skip_locked=True)
        async with database.write() as session:
            result = await session.execute(delete(THROTTLE).where(THROTTLE.c.key.in_(expired)))
        return int(getattr(result, "rowcount", 0) or 0)

    async def _maybe_clean(self, database: Database, now: datetime) -> None:
        self._since_cleanup += 1
        if self._since_cleanup < self.cleanup_every and time.monotonic() < self.next_cleanup:
            return
        self._since_cleanup = 0
        self.next_cleanup = time.monotonic() + self.cleanup_seconds
        try:
            await self.cleanup(database, now)
        except Exception:  # a failed cleanup must not fail the login; it runs again later
            log.exception("login limiter: cleaning expired rows failed")


async def _lock(session: AsyncSession, key: str, now: datetime) -> Counts:
    """The row of `key`, created if missing, locked until the transaction ends."""
    dialect = session.get_bind().dialect.name
    insert: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    # A new row is born expired: `decide` starts it afresh.
    statement = (
        insert(THROTTLE)
        .values(key=key, failures=0, window_start=now, blocked_until=None, expires_at=now)
        # A no-op update takes the row lock (an insert that conflicts would not).
        .on_conflict_do_update(index_elements=[THROTTLE.c.key],
                               set_={"failures": THROTTLE.c.failures})
        .returning(THROTTLE.c.failures, THROTTLE.c.window_start, THROTTLE.c.blocked_until,
                   THROTTLE.c.expires_at)
    )
    row = (await session.execute(statement)).one()
    return Counts(row.failures, row.window_start, row.blocked_until, row.expires_at)
