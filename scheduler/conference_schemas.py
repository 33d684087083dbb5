"""The booking API's request bodies and the JSON form of a conference."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from scheduler import responses
from vcbridge.core.db.models import Conference
from vcbridge.core.http.json_schema import MULTI_LINE_PATTERN, Documented, whole_number
from vcbridge.core.http.render import body_of
from vcbridge.core.http.text import TextRule, clean_text, multi_line_text
from vcbridge.core.roster import CODE_PATTERN


def _single_line(value: str) -> str:
    value = clean_text(value)
    # Checked before stripping, so that the document's pattern can say it.
    if "\n" in value or "\t" in value:
        raise ValueError("must be a single line")
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


# One line, no control characters, something besides white space.
TITLE_PATTERN = (r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f]"
                 r"[^\x00-\x1f\x7f-\x9f]*$")
Title = Annotated[str, Field(min_length=1, max_length=200),
                  TextRule(_single_line, TITLE_PATTERN)]
Agenda = Annotated[str, Field(max_length=20_000), multi_line_text]
EndpointCode = Annotated[str, Field(pattern=CODE_PATTERN)]


def _unique(codes: list[str]) -> list[str]:
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise ValueError(f"duplicate participants: {', '.join(duplicates)}")
    return codes


Participants = Annotated[
    list[EndpointCode], Field(min_length=2, max_length=1000), AfterValidator(_unique),
    Documented(uniqueItems=True),
]
SetupMinutes = Annotated[int, Field(ge=0, le=1440), whole_number]


def _plausible_year(value: datetime) -> datetime:
    # Far enough for any booking horizon; keeps date arithmetic from overflowing.
    if not 2000 <= value.year <= 2199:
        raise ValueError("must be between the years 2000 and 2199")
    return value


# The years are a booking rule (422), stated in words: a pattern on top of the format
# leaves a generator too few strings.
When = Annotated[AwareDatetime, AfterValidator(_plausible_year),
                 Documented(description="RFC 3339 with a UTC offset, years 2000 to 2199.")]

_STRICT = ConfigDict(extra="forbid", strict=True)


class ConferenceCreate(BaseModel):
    """POST /api/v1/conferences."""

    model_config = _STRICT

    title: Title
    agenda: Agenda = ""
    chair: EndpointCode
    participants: Participants
    start: When
    end: When
    setup_minutes: SetupMinutes | None = None
    rrule: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class ConferenceUpdate(BaseModel):
    """PATCH /api/v1/conferences/{id}: only the fields given change."""

    model_config = _STRICT

    title: Title | None = None
    agenda: Agenda | None = None
    chair: EndpointCode | None = None
    participants: Participants | None = None
    start: When | None = None
    end: When | None = None
    setup_minutes: SetupMinutes | None = None


def _reason(value: str) -> str:
    return clean_text(value).strip()


# Why a conference is cancelled: shown to its participants, kept in the audit log.
MAX_CANCEL_REASON = 1000
CancelReason = Annotated[str, Field(max_length=MAX_CANCEL_REASON),
                         TextRule(_reason, MULTI_LINE_PATTERN)]


class ConferenceCancel(BaseModel):
    """DELETE /api/v1/conferences/{id}: the optional body."""

    model_config = _STRICT

    reason: CancelReason = ""


Scope = Literal["this", "following"]


def conference_json(conference: Conference, zone: ZoneInfo) -> dict[str, Any]:
    """A conference as the API shows it, JSON-ready (the audit log's before and after)."""
    body: dict[str, Any] = body_of(responses.Conference.of(conference, zone))
    return body
