"""Login rate limiting: failed attempts per user name and per client address."""

from __future__ import annotations

from collections import deque


class LoginLimiter:
    """A sliding window of failures per key; in memory, per process.

    Each process limits on its own: with N processes an attacker gets at
    most N times the budget, still far too little to guess an Argon2 password."""

    def __init__(self, max_failures: int, window_seconds: float, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, keys: list[str], now: float) -> float:
        """Seconds until a login for `keys` may be tried again (0: now)."""
        wait = 0.0
        for key in keys:
            failures = self._recent(key, now)
            if len(failures) >= self.max_failures:
                wait = max(wait, failures[0] + self.window - now)
        return wait

    def fail(self, keys: list[str], now: float) -> None:
        """Count one failed attempt against each key."""
        if len(self._failures) >= self.max_keys:
            # Bound memory under a spray of distinct names: forget the oldest keys.
            for stale in list(self._failures)[: self.max_keys // 10]:
                del self._failures[stale]
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeed(self, keys: list[str]) -> None:
        """Forget the failures of a user who just logged in."""
        for key in keys:
            self._failures.pop(key, None)
