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


# Enough for any meeting pattern; the others (BYYEARDAY, BYWEEKNO, BYHOUR...)
# only add ways to write rules that never match or repeat within a day.
ALLOWED_PARTS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY",
                           "BYMONTH", "BYSETPOS", "WKST"})
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _numbers(parts: dict[str, str], name: str, low: int, high: int) -> list[int]:
    try:
        values = [int(v) for v in parts[name].split(",")] if name in parts else []
    except ValueError:
        raise RecurrenceError(f"invalid rrule: {name} must be numbers") from None
    if any(v == 0 or not low <= abs(v) <= high for v in values):
        raise RecurrenceError(f"invalid rrule: {name} must be between 1 and {high} "
                              f"(or -1 and -{high})")
    return values


def _until(text: str, zone: ZoneInfo) -> datetime:
    """UNTIL as an aware datetime (a bare date means that day in the province's zone)."""
    if len(text) == 8:
        return datetime(int(text[:4]), int(text[4:6]), int(text[6:]), 23, 59, 59, tzinfo=zone)
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=ZoneInfo("UTC"))


def _check_parts(parts: dict[str, str]) -> None:
    """Refuse parts we do not support and day/month combinations that never occur.

    dateutil searches to the year 9999 for a rule that never matches, so an
    impossible rule must be caught before expanding it."""
    unsupported = sorted(set(parts) - ALLOWED_PARTS)
    if unsupported:
        raise RecurrenceError(f"rrule part {', '.join(unsupported)} is not supported for "
                              "conference bookings")
    months = _numbers(parts, "BYMONTH", 1, 12)
    days = _numbers(parts, "BYMONTHDAY", 1, 31)
    _numbers(parts, "BYSETPOS", 1, 366)
    if days and months and not any(
        abs(day) <= _DAYS_IN_MONTH[month - 1] for day in days for month in months
    ):
        raise RecurrenceError("rrule never occurs: no chosen month has the chosen day")


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
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("rrule must not give both COUNT and UNTIL (RFC 5545)")
    if parts.get("INTERVAL", "1") == "0":
        raise RecurrenceError("rrule INTERVAL must be at least 1")
    _check_parts(parts)
    if parts.get("FREQ") not in ALLOWED_FREQUENCIES:
        raise RecurrenceError("rrule may repeat at most daily (FREQ=DAILY/WEEKLY/MONTHLY/YEARLY)")
    if int(parts.get("COUNT", "0")) > max_occurrences:
        raise RecurrenceError(f"rrule gives more than {max_occurrences} occurrences")

    # Expand only up to the horizon: a rule that never matches (BYMONTH=2;
    # BYMONTHDAY=31) would otherwise make dateutil search until the year 9999.
    wanted = int(parts["COUNT"]) if "COUNT" in parts else None
    until = _until(parts["UNTIL"], zone) if "UNTIL" in parts else None
    if until is not None and until > horizon_end:
        raise RecurrenceError("rrule runs past the booking horizon")
    bounded = rule.replace(count=None, until=(until or horizon_end).astimezone(zone))
    starts: list[datetime] = []
    try:
        for occurrence in bounded:
            if len(starts) == max_occurrences:
                raise RecurrenceError(f"rrule gives more than {max_occurrences} occurrences")
            if wanted is not None and len(starts) == wanted:
                break
            starts.append(occurrence.astimezone(ZoneInfo("UTC")))
    except RecurrenceError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise RecurrenceError(f"invalid rrule: {exc}") from None
    if wanted is not None and len(starts) < wanted:
        raise RecurrenceError("rrule runs past the booking horizon")
    if not starts:
        raise RecurrenceError("rrule gives no occurrence")
    if starts[0] != start.astimezone(ZoneInfo("UTC")):
        raise RecurrenceError("the conference start must be the first occurrence of the rrule")
    for earlier, later in itertools.pairwise(starts):
        if later < earlier + duration:
            raise RecurrenceError("occurrences of the rrule would overlap each other")
    return starts
