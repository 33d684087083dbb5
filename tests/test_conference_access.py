"""The one home of "who may see, moderate and read the recordings of a conference"."""

from __future__ import annotations

import pytest

from vcbridge.core.auth.conference_access import (
    Access,
    Parties,
    may_see,
    may_see_endpoint,
    moderation_access,
    recordings_access,
)
from vcbridge.core.auth.principal import Principal
from vcbridge.core.db.models import Role, TokenScope

CHAIR, SITE, OTHER = 1, 2, 3
PARTIES = Parties.of(CHAIR, [SITE])  # the chair is a party even if not listed again


def user(role: Role, endpoint: int | None = None) -> Principal:
    return Principal(name=f"{role.value}-{endpoint}", scope=TokenScope.LOGIN, token_id=1,
                     role=role, user_id=1, endpoint_id=endpoint)


def agent(endpoint: int) -> Principal:
    return Principal(name=f"agent-{endpoint}", scope=TokenScope.AGENT, token_id=2,
                     endpoint_id=endpoint)


# (caller, sees it, recordings, moderation)
CASES = [
    (user(Role.ADMIN), True, Access.GRANTED, Access.GRANTED),
    (user(Role.BOOKER), True, Access.GRANTED, Access.GRANTED),
    (user(Role.IT), True, Access.GRANTED, Access.FORBIDDEN),  # sees all, runs no meeting
    (user(Role.OPERATOR, CHAIR), True, Access.GRANTED, Access.GRANTED),
    (user(Role.OPERATOR, SITE), True, Access.FORBIDDEN, Access.FORBIDDEN),
    (user(Role.OPERATOR, OTHER), False, Access.HIDDEN, Access.HIDDEN),
    (agent(CHAIR), True, Access.GRANTED, Access.FORBIDDEN),  # a token, not a person
    (agent(SITE), True, Access.FORBIDDEN, Access.FORBIDDEN),
    (agent(OTHER), False, Access.HIDDEN, Access.HIDDEN),
]


@pytest.mark.parametrize(("caller", "sees", "recordings", "moderation"), CASES,
                         ids=[c[0].name for c in CASES])
def test_each_caller_gets_its_answer(caller: Principal, sees: bool, recordings: Access,
                                     moderation: Access) -> None:
    assert may_see(caller, PARTIES) is sees
    assert recordings_access(caller, PARTIES) is recordings
    assert moderation_access(caller, PARTIES) is moderation
    # Whoever may not see the conference is never told more than "absent".
    assert sees or (recordings is Access.HIDDEN and moderation is Access.HIDDEN)


def test_an_endpoint_is_seen_by_staff_and_by_itself() -> None:
    assert may_see_endpoint(user(Role.IT), OTHER)
    assert may_see_endpoint(agent(SITE), SITE)
    assert not may_see_endpoint(user(Role.OPERATOR, SITE), OTHER)
