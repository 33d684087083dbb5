"""A short memory of resolved agent tokens.

An endpoint agent calls every few seconds (a heartbeat every 5 s); with a
thousand endpoints, reading the token from the database on every call would
cost more than handling the heartbeat itself. Only agent-scope tokens are
kept: a person's login token is checked against the database on every
request. A token revoked through this process is forgotten at once; another
process (several services on one PostgreSQL) notices within `seconds`, the
documented bound. An expired token is never answered from memory."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime

from vcbridge.core.auth.principal import Principal
from vcbridge.core.auth.tokens import Resolved
from vcbridge.core.db.models import TokenScope


class AgentTokenCache:
    """Token hash -> the agent it stands for, for `seconds` after it was read."""

    def __init__(self, seconds: float, max_entries: int = 20_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Resolved, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, hashed: str, now: datetime) -> Principal | None:
        """The cached caller of a token, if still fresh and not expired."""
        entry = self._entries.get(hashed)
        if entry is None:
            return None
        resolved, until = entry
        if time.monotonic() >= until or (
                resolved.expires_at is not None and resolved.expires_at <= now):
            del self._entries[hashed]
            return None
        return resolved.principal

    def put(self, hashed: str, resolved: Resolved) -> None:
        """Remember an agent token's caller (other scopes are not kept)."""
        if self.seconds <= 0 or resolved.principal.scope is not TokenScope.AGENT:
            return
        self._entries[hashed] = (resolved, time.monotonic() + self.seconds)
        self._entries.move_to_end(hashed)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_token(self, token_id: int) -> None:
        """A token was revoked: never answer it from memory again."""
        for hashed in [h for h, (r, _) in self._entries.items()
                       if r.principal.token_id == token_id]:
            del self._entries[hashed]

    def clear(self) -> None:
        """Forget every token: each is read from the database again."""
        self._entries.clear()
