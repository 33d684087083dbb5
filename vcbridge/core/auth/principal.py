"""Who is calling, and what each role may do."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vcbridge.core.audit import Actor
from vcbridge.core.db.models import Role, TokenScope


class Permission(enum.Enum):
    BOOK = "book"  # create, edit, cancel conferences
    READ_ALL_CONFERENCES = "read_all_conferences"
    MANAGE_USERS = "manage_users"
    MANAGE_ENDPOINT_TOKENS = "manage_endpoint_tokens"
    READ_AUDIT = "read_audit"
    # Run any conference's room from the chair console on the chair's behalf
    # (floor, mute, lock, admit, remove, record), without being a site.
    MODERATE = "moderate"
    # Every endpoint's per-minute call figures and health history (the IT dashboard);
    # an operator sees its own endpoint's through the endpoint binding instead.
    READ_HEALTH_HISTORY = "read_health_history"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.BOOKER: frozenset({Permission.BOOK, Permission.READ_ALL_CONFERENCES,
                            Permission.MODERATE}),
    # IT staff see every conference to support it, but how a meeting is run
    # (who speaks, who is muted or removed) is the organisers' decision, not theirs.
    Role.IT: frozenset({Permission.READ_ALL_CONFERENCES, Permission.READ_HEALTH_HISTORY}),
    Role.OPERATOR: frozenset(),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user (login token) or an endpoint (agent or calendar token)."""

    name: str
    scope: TokenScope
    token_id: int
    role: Role | None = None
    user_id: int | None = None
    endpoint_id: int | None = None
    endpoint_code: str | None = None

    def can(self, permission: Permission) -> bool:
        """True when this caller's role grants `permission`."""
        return self.role is not None and permission in ROLE_PERMISSIONS[self.role]

    def acts_for_endpoint(self, endpoint_id: int) -> bool:
        """True when the caller is bound to `endpoint_id` (operator, agent or calendar token)."""
        return self.endpoint_id is not None and self.endpoint_id == endpoint_id

    def actor(self, remote: str = "") -> Actor:
        """The audit identity of this caller."""
        role = self.role.value if self.role else f"endpoint-{self.scope.value}"
        return Actor(name=self.name, role=role, remote=remote)
