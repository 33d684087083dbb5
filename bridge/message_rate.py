"""How fast one signaling connection may send: a pure limiter, no asyncio, no I/O.

Every message a client sends costs the bridge work on its one event loop (an
offer most of all: aiortc parses it, builds transceivers and gathers ICE
candidates), and a floor action also writes an audit row and an event row.
A connection that sends faster than any real client does is closed, so one
site cannot keep the room busy for the others.

Two token buckets per connection: every message takes a token from the
message bucket (`burst` at once, refilled at `rate` per second), and every
offer also from the offer bucket (`offers_per_minute` at once, refilled at
that rate per minute). The caller passes the time (the loop's monotonic
clock), so the limiter is a plain value that tests drive by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RateRefusal = Literal["messages", "offers"]


@dataclass(frozen=True)
class SignalingLimits:
    """The per-connection limits (settings `signaling_message_*`, `signaling_offers_*`)."""

    message_rate: float  # messages per second, sustained
    message_burst: int  # messages at once
    offers_per_minute: int  # offers at once, and refilled at this rate per minute

    def __post_init__(self) -> None:
        if self.message_rate <= 0 or self.message_burst < 1 or self.offers_per_minute < 1:
            raise ValueError("signaling limits must be positive")


@dataclass
class TokenBucket:
    """A bucket of `capacity` tokens refilled at `rate` tokens per second; starts full."""

    capacity: float
    rate: float
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens at time `now` (seconds, monotonic); False if there are too few.

        A refused take costs nothing, so a client that slows down recovers."""
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True


@dataclass
class ConnectionRate:
    """One connection's buckets."""

    limits: SignalingLimits
    messages: TokenBucket = field(init=False)
    offers: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self.messages = TokenBucket(self.limits.message_burst, self.limits.message_rate)
        self.offers = TokenBucket(self.limits.offers_per_minute,
                                  self.limits.offers_per_minute / 60.0)

    def message(self, now: float) -> RateRefusal | None:
        """A message arrived (any frame, before it is parsed); "messages" if over the limit."""
        return None if self.messages.take(now) else "messages"

    def offer(self, now: float) -> RateRefusal | None:
        """The message is an offer (counted once more); "offers" if over the limit."""
        return None if self.offers.take(now) else "offers"


@dataclass
class JoinBudgets:
    """How often each site (or moderator) may connect to a room: `per_minute` at once,
    refilled at that rate.

    A refused offer closes its connection, so a site that reconnects in a loop would
    escape the per-connection limits; this bounds the loop. Keyed by the caller (room,
    endpoint code or user name), who has already been authenticated and authorised:
    nobody can spend another's budget. Full buckets are forgotten when there are many."""

    per_minute: int
    buckets: dict[tuple[int, str], TokenBucket] = field(default_factory=dict)
    max_keys: int = 4096

    def join(self, key: tuple[int, str], now: float) -> bool:
        """A connection of `key` at `now`; False if over the budget."""
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self._forget_full(now)
            bucket = self.buckets[key] = TokenBucket(self.per_minute, self.per_minute / 60.0)
        return bucket.take(now)

    def _forget_full(self, now: float) -> None:
        for key, bucket in list(self.buckets.items()):
            if bucket.updated is None or (
                    bucket.tokens + (now - bucket.updated) * bucket.rate >= bucket.capacity):
                del self.buckets[key]
