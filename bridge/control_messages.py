"""The floor and moderation messages of the signaling protocol, typed.

One model per message type with exactly the fields `docs/signaling.md`
defines, each bounded (an endpoint code has the roster's form, at most 64
characters; flags are booleans). A message with any other field, or a field
of the wrong type, is refused with `bad_message` and changes nothing: what a
client invents is never stored. What an action records in the audit log and
publishes on the event stream (`stored_fields`) is built from the model, so
it holds only these fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from vcbridge.core.roster import CODE_PATTERN

EndpointCode = Annotated[str, StringConstraints(pattern=CODE_PATTERN, max_length=64)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FloorRequest(_Message):
    """A site asks for the floor."""

    type: Literal["floor.request"]


class FloorCancel(_Message):
    """A site withdraws its request."""

    type: Literal["floor.cancel"]


class FloorRelease(_Message):
    """The holder gives the floor back."""

    type: Literal["floor.release"]


class FloorRevoke(_Message):
    """The chair takes the floor back."""

    type: Literal["floor.revoke"]


class Targeted(_Message):
    """A chair action on one site."""

    type: Literal["floor.grant", "floor.refuse", "admit", "remove"]
    endpoint: EndpointCode


class Mute(_Message):
    """The chair mutes or unmutes one site."""

    type: Literal["mute"]
    endpoint: EndpointCode
    muted: bool


class MuteAll(_Message):
    """The chair mutes or unmutes every site but itself and the holder."""

    type: Literal["mute_all"]
    muted: bool


class Lock(_Message):
    """The chair locks or unlocks the room."""

    type: Literal["lock"]
    locked: bool


class Record(_Message):
    """The chair starts or stops recording."""

    type: Literal["record"]
    on: bool


ControlMessage: TypeAlias = (FloorRequest | FloorCancel | FloorRelease | FloorRevoke | Targeted
                             | Mute | MuteAll | Lock | Record)
_ADAPTER: TypeAdapter[ControlMessage] = TypeAdapter(
    Annotated[ControlMessage, Field(discriminator="type")])

CONTROL_TYPES = frozenset({
    "floor.request", "floor.cancel", "floor.release", "floor.grant", "floor.refuse",
    "floor.revoke", "mute", "mute_all", "lock", "admit", "remove", "record",
})


def parse_control(body: dict[str, Any]) -> ControlMessage:
    """The typed message, or ValueError with a short reason that never echoes the input.

    `body` is a JSON object whose `type` is one of CONTROL_TYPES."""
    try:
        return _ADAPTER.validate_python(body)
    except ValidationError as exc:
        kind = str(body.get("type"))[:40]
        raise ValueError(f'"{kind}": {_reasons(exc)}') from None


def _reasons(exc: ValidationError) -> str:
    reasons = []
    for error in exc.errors(include_input=False, include_url=False)[:3]:
        # The location is the field's name (bounded by JSON keys the client chose: cut it).
        where = ".".join(str(part) for part in error["loc"][1:])[:40] or "message"
        if error["type"] == "extra_forbidden":
            reasons.append(f"unknown field {where!r}")
        elif error["type"] == "missing":
            reasons.append(f"missing field {where!r}")
        else:
            reasons.append(f"{where!r}: {error['msg']}")
    return "; ".join(reasons)


def stored_fields(message: ControlMessage) -> dict[str, Any]:
    """What the audit log and the event stream record of `message`: its fields but `type`."""
    return message.model_dump(exclude={"type"})
