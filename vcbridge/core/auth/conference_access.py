"""Who may see a conference, read its recordings and moderate its room: the one home of these rules.

Pure functions over a `Principal` and the conference's parties (its chair endpoint
and its participant endpoints; the chair is always among the participants). The
API handlers turn the answers into HTTP: `Access.HIDDEN` is a 404 (a conference
the caller may not see is answered as absent, so ids cannot be probed),
`Access.FORBIDDEN` a 403 (the caller sees the conference but may not do this).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from vcbridge.core.auth.principal import Permission, Principal
from vcbridge.core.db.models import Conference, TokenScope


class Access(enum.Enum):
    """The answer to "may this caller do this to this conference"."""

    GRANTED = "granted"
    FORBIDDEN = "forbidden"  # sees the conference, may not do this: 403
    HIDDEN = "hidden"  # may not even see it: 404, as if it did not exist


@dataclass(frozen=True)
class Parties:
    """The endpoints a conference concerns: its chair and every participant."""

    chair_id: int
    participant_ids: frozenset[int]

    @classmethod
    def of(cls, chair_id: int, participant_ids: Iterable[int]) -> Parties:
        """The parties of a conference from its chair id and its participants' ids."""
        return cls(chair_id, frozenset(participant_ids) | {chair_id})


def is_staff(principal: Principal) -> bool:
    """True for callers who see every conference and endpoint (bookers, IT, admins)."""
    return principal.can(Permission.READ_ALL_CONFERENCES)


def may_see_endpoint(principal: Principal, endpoint_id: int) -> bool:
    """Staff, or a caller bound to that endpoint (its health, its calendar)."""
    return is_staff(principal) or principal.acts_for_endpoint(endpoint_id)


def may_see(principal: Principal, parties: Parties) -> bool:
    """Staff, or a caller bound to one of the conference's endpoints."""
    return is_staff(principal) or any(
        principal.acts_for_endpoint(i) for i in parties.participant_ids)


def _unless_hidden(principal: Principal, parties: Parties, granted: bool) -> Access:
    if granted:
        return Access.GRANTED
    return Access.FORBIDDEN if may_see(principal, parties) else Access.HIDDEN


def recordings_access(principal: Principal, parties: Parties) -> Access:
    """Staff and the chair endpoint read the recordings; other participants may not."""
    granted = is_staff(principal) or principal.acts_for_endpoint(parties.chair_id)
    return _unless_hidden(principal, parties, granted)


def moderation_access(principal: Principal, parties: Parties) -> Access:
    """Who may run the room from the chair console without being a site.

    A person (a login session, not an agent's token) who may moderate any
    conference (bookers and admins: Permission.MODERATE), or the chair
    endpoint's operator (a second console, e.g. while the endpoint's own agent
    carries the chair's media)."""
    person = principal.scope is TokenScope.LOGIN and principal.role is not None
    granted = person and (principal.can(Permission.MODERATE)
                          or principal.acts_for_endpoint(parties.chair_id))
    return _unless_hidden(principal, parties, granted)


def parties(conference: Conference) -> Parties:
    """The parties of a loaded conference (participants are an eager relationship)."""
    return Parties.of(conference.chair_endpoint_id,
                      (p.endpoint_id for p in conference.participants))
