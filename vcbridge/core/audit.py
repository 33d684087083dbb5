"""The audit log: every write records who did what, when, before and after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vcbridge.core.db.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user, an endpoint agent, or the system itself."""

    name: str
    role: str
    remote: str = ""


SYSTEM = Actor(name="system", role="system")


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | int,
    before: Any | None,
    after: Any | None,
    at: datetime,
) -> None:
    """Add an audit event to `session`, so it commits or rolls back with the change."""
    session.add(
        AuditEvent(
            at=at,
            actor=actor.name,
            role=actor.role,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            before=before,
            after=after,
            remote=actor.remote,
        )
    )
