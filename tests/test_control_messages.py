"""Floor messages are typed: only the fields the protocol defines are accepted and stored."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.control_messages import CONTROL_TYPES, parse_control, stored_fields

EXAMPLES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"type": "floor.request"}, {}),
    ({"type": "floor.cancel"}, {}),
    ({"type": "floor.release"}, {}),
    ({"type": "floor.revoke"}, {}),
    ({"type": "floor.grant", "endpoint": "HUYEN-NGA-SON"}, {"endpoint": "HUYEN-NGA-SON"}),
    ({"type": "floor.refuse", "endpoint": "HUYEN-NGA-SON"}, {"endpoint": "HUYEN-NGA-SON"}),
    ({"type": "admit", "endpoint": "SO-Y-TE"}, {"endpoint": "SO-Y-TE"}),
    ({"type": "remove", "endpoint": "SO-Y-TE"}, {"endpoint": "SO-Y-TE"}),
    ({"type": "mute", "endpoint": "UBND-TINH", "muted": True},
     {"endpoint": "UBND-TINH", "muted": True}),
    ({"type": "mute_all", "muted": False}, {"muted": False}),
    ({"type": "lock", "locked": True}, {"locked": True}),
    ({"type": "record", "on": True}, {"on": True}),
]


@pytest.mark.parametrize(("message", "stored"), EXAMPLES)
def test_every_message_of_the_protocol_and_what_is_stored_of_it(
    message: dict[str, Any], stored: dict[str, Any]
) -> None:
    parsed = parse_control(message)
    assert parsed.type == message["type"]
    assert stored_fields(parsed) == stored


def test_the_examples_cover_every_control_type() -> None:
    assert {message["type"] for message, _stored in EXAMPLES} == CONTROL_TYPES


def test_a_junk_field_is_refused_and_never_echoed() -> None:
    junk = "x" * 400_000
    with pytest.raises(ValueError, match="unknown field 'junk'") as refused:
        parse_control({"type": "floor.request", "junk": junk})
    assert len(str(refused.value)) < 200
    with pytest.raises(ValueError, match="unknown field") as refused:
        parse_control({"type": "mute", "endpoint": "UBND-TINH", "muted": True, junk: 1})
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize(("message", "reason"), [
    ({"type": "record", "on": "yes"}, "'on': Input should be a valid boolean"),
    ({"type": "record"}, "missing field 'on'"),
    ({"type": "mute", "endpoint": "UBND-TINH"}, "missing field 'muted'"),
    ({"type": "mute", "endpoint": "UBND-TINH", "locked": True},
     "missing field 'muted'; unknown field 'locked'"),
    ({"type": "lock", "locked": 1}, "valid boolean"),
    ({"type": "floor.grant"}, "missing field 'endpoint'"),
    ({"type": "floor.grant", "endpoint": 7}, "valid string"),
    ({"type": "floor.grant", "endpoint": ""}, "'endpoint': String should match pattern"),
    ({"type": "admit", "endpoint": "<img src=x onerror=alert(1)>"}, "should match pattern"),
    ({"type": "admit", "endpoint": "A" * 65}, "'endpoint'"),
])
def test_wrong_fields_are_refused_with_a_short_reason(message: dict[str, Any],
                                                      reason: str) -> None:
    with pytest.raises(ValueError, match=f'^"{message["type"]}": ') as refused:
        parse_control(message)
    assert reason in str(refused.value)
    assert "<img" not in str(refused.value)
