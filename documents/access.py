"""Who may see a document: whoever may see a conference it is attached to.

The rule is vcbridge/core/auth/conference_access.py's `may_see` (staff see every
conference; an operator or agent, those its endpoint takes part in), written as
SQL so that a list or a search filters in the database and never even reads a
document the caller may not see. A document attached to a series is seen by
whoever may see any occurrence of it."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, false, or_, select

from vcbridge.core.auth.conference_access import is_staff
from vcbridge.core.auth.principal import Principal
from vcbridge.core.db.models import Conference, Document, Participant


def conferences_of(endpoint_id: int) -> Select[int]:
    """The ids of the conferences the endpoint takes part in (chairing included: the
    booking rules keep the chair among the participants). One range of the
    (endpoint, conference) index, computed once per query, not once per row."""
    return select(Participant.conference_id).where(Participant.endpoint_id == endpoint_id)


def visible_documents(principal: Principal) -> ColumnElement[bool] | None:
    """A condition on `Document` rows the caller may see; None: every row (staff)."""
    if is_staff(principal):
        return None
    endpoint_id = principal.endpoint_id
    if endpoint_id is None:
        return false()
    series = (select(Conference.series_id)
              .where(Conference.id.in_(conferences_of(endpoint_id)),
                     Conference.series_id.is_not(None)))
    return or_(Document.conference_id.in_(conferences_of(endpoint_id)),
               Document.series_id.in_(series))


def visible_conferences(principal: Principal) -> ColumnElement[bool] | None:
    """A condition on `Conference` rows the caller may see; None: every row (staff)."""
    if is_staff(principal):
        return None
    if principal.endpoint_id is None:
        return false()
    return Conference.id.in_(conferences_of(principal.endpoint_id))
