"""Who may see a document: whoever may see a conference it is attached to.

The rule is vcbridge/core/auth/conference_access.py's `may_see` (staff see every
conference; an operator or agent, those its endpoint takes part in), written as
SQL so that a list or a search filters in the database and never even reads a
document the caller may not see. A document attached to a series is seen by
whoever may see any occurrence of it."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.orm import aliased

from vcbridge.core.auth.conference_access import is_staff
from vcbridge.core.auth.principal import Principal
from vcbridge.core.db.models import Conference, Document, Participant


def takes_part(conference: type[Conference], endpoint_id: int) -> ColumnElement[bool]:
    """The endpoint chairs the conference or takes part in it."""
    return or_(
        conference.chair_endpoint_id == endpoint_id,
        exists(select(Participant.id).where(Participant.conference_id == conference.id,
                                            Participant.endpoint_id == endpoint_id)),
    )


def visible_documents(principal: Principal) -> ColumnElement[bool] | None:
    """A condition on `Document` rows the caller may see; None: every row (staff)."""
    if is_staff(principal):
        return None
    endpoint_id = principal.endpoint_id
    if endpoint_id is None:
        return false()
    own = aliased(Conference)
    occurrence = aliased(Conference)
    # Two EXISTS rather than one with an OR in it: each is one index look-up.
    return or_(
        exists(select(own.id).where(own.id == Document.conference_id,
                                    takes_part(own, endpoint_id))),
        and_(Document.series_id.is_not(None),
             exists(select(occurrence.id).where(occurrence.series_id == Document.series_id,
                                                takes_part(occurrence, endpoint_id)))),
    )


def visible_conferences(principal: Principal) -> ColumnElement[bool] | None:
    """A condition on `Conference` rows the caller may see; None: every row (staff)."""
    if is_staff(principal):
        return None
    if principal.endpoint_id is None:
        return false()
    return takes_part(Conference, principal.endpoint_id)
