"""Schemathesis hooks of the API contract test (tests/schemathesis.toml names this module).

The run authenticates as the admin (logging in again after a 401), and as the site's
agent and operator where only an endpoint may call. Those credentials must outlive the
run: a new password or role for their accounts would end their sessions, and revoking
the agent token would end the agent. So a request that would change one of these
accounts or revoke that token is sent to an id that does not exist instead (answered
404, checked like any other answer); every other id is fuzzed as usual. This happens
just before the call, so it covers every phase, examples and stateful links included."""

from __future__ import annotations

import os
from typing import Any

import schemathesis

ABSENT_ID = 2**31 - 1  # the largest id the API takes; no row has it in a scratch run
KEPT = {
    "PATCH /api/v1/users/{id}": "VCBRIDGE_CONTRACT_KEEP_USERS",
    "POST /api/v1/users/{id}/password-reset": "VCBRIDGE_CONTRACT_KEEP_USERS",
    "DELETE /api/v1/endpoints/{code}/tokens/{id}": "VCBRIDGE_CONTRACT_KEEP_TOKENS",
}


def _ids(variable: str) -> set[int]:
    return {int(part) for part in os.environ.get(variable, "").split(",") if part}


def _names_one_of(value: Any, ids: set[int]) -> bool:
    text = str(value)
    # The service reads "01" as 1 (ASCII digits), so compare as numbers.
    return text.isascii() and text.isdigit() and int(text) in ids


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case,
                kwargs: dict[str, Any]) -> None:
    """Point a request at the run's own accounts or agent token elsewhere."""
    variable = KEPT.get(case.operation.label)
    if variable and case.path_parameters and _names_one_of(
            case.path_parameters.get("id"), _ids(variable)):
        case.path_parameters["id"] = ABSENT_ID
