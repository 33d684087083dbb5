"""Recurring bookings: RFC 5545 RRULE parsing and expansion (python-dateutil). No I/O."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

_UNTIL = re.compile(r"\d{8}(T\d{6}Z)?")
ALLOWED_FREQUENCIES = frozenset({"DAILY", "WEEKLY", "MONTHLY", "YEARLY"})


class RecurrenceError(ValueError):
    """The RRULE is invalid or not acceptable (never ends, too frequent, too many)."""


def normalise(text: str) -> str:
    """The RRULE without an 'RRULE:' prefix, upper case, trimmed."""
    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    return text.upper()


def expand(
    text: str,
    start: datetime,
    duration: timedelta,
    zone: ZoneInfo,
    *,
    max_occurrences: int,
    horizon_end: datetime,
) -> list[datetime]:
    """The start of each occurrence (aware, UTC), the first being `start`.

    The rule is evaluated in the province's zone, so "every Monday 08:00"
    stays 08:00 local whatever the zone's offset. A rule must end (COUNT or
    UNTIL), repeat at most daily, and not make occurrences overlap."""
    rule_text = normalise(text)
    if not rule_text or "\n" in rule_text or len(rule_text) > 500:
        raise RecurrenceError("rrule must be one RFC 5545 RRULE line")
    if "DTSTART" in rule_text:
        raise RecurrenceError("rrule must not contain DTSTART: the conference start is used")
    local_start = start.astimezone(zone)
    try:
        rule = rrulestr(rule_text, dtstart=local_start, forceset=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RecurrenceError(f"invalid rrule: {exc}") from None
    if not isinstance(rule, rrule):
        raise RecurrenceError("rrule must be a single RRULE")
    # The rule parsed, so its parts are well-formed NAME=VALUE pairs.
    parts = dict(part.split("=", 1) for part in rule_text.split(";") if "=" in part)
    if "UNTIL" in parts and not _UNTIL.fullmatch(parts["UNTIL"]):
        # dateutil is lenient; RFC 5545 wants a date or a UTC date-time here.
        raise RecurrenceError("invalid rrule: UNTIL must be a date (20271231) or a UTC "
                              "date-time (20271231T170000Z)")
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise RecurrenceError("rrule must end: give COUNT or UNTIL")
    if parts.get("FREQ") not in ALLOWED_FREQUENCIES:
        raise RecurrenceError("rrule may repeat at most daily (FREQ=DAILY/WEEKLY/MONTHLY/YEARLY)")
    if int(parts.get("COUNT", "0")) > max_occurrences:
        raise RecurrenceError(f"rrule gives more than {max_occurrences} occurrences")

    starts: list[datetime] = []
    try:
        for occurrence in rule:
            if len(starts) == max_occurrences:
                raise RecurrenceError(f"rrule gives more than {max_occurrences} occurrences")
            if occurrence > horizon_end:
                raise RecurrenceError("rrule runs past the booking horizon")
            starts.append(occurrence.astimezone(ZoneInfo("UTC")))
    except (ValueError, TypeError, OverflowError) as exc:
        raise RecurrenceError(f"invalid rrule: {exc}") from None
    if not starts:
        raise RecurrenceError("rrule gives no occurrence")
    if starts[0] != start.astimezone(ZoneInfo("UTC")):
        raise RecurrenceError("the conference start must be the first occurrence of the rrule")
    for earlier, later in itertools.pairwise(starts):
        if later < earlier + duration:
            raise RecurrenceError("occurrences of the rrule would overlap each other")
    return starts
