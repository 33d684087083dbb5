"""Recurring bookings: a strict RFC 5545 RRULE parser and the expansion (python-dateutil).

No I/O. The text is parsed here, part by part, each value checked against
its type and a range that makes sense for a meeting; dateutil's `rrule` is
then built from the parsed values (its own string parser is lenient, and it
searches to the year 9999 for a rule that never matches). The expansion is
run by `scheduler/recurrence_worker.py` in a worker process with a time
budget; `expand` itself stays a plain function."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, weekday

UTC = ZoneInfo("UTC")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
FREQUENCIES: dict[str, Literal[0, 1, 2, 3]] = {
    "DAILY": DAILY, "WEEKLY": WEEKLY, "MONTHLY": MONTHLY, "YEARLY": YEARLY,
}
ALLOWED_FREQUENCIES = frozenset(FREQUENCIES)
_TOO_FREQUENT = frozenset({"HOURLY", "MINUTELY", "SECONDLY"})
# Enough for any meeting pattern; the others (BYYEARDAY, BYWEEKNO, BYHOUR...)
# only add ways to write rules that never match or repeat within a day.
ALLOWED_PARTS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY",
                           "BYMONTH", "BYSETPOS", "WKST"})
_RFC_PARTS = ALLOWED_PARTS | {"BYSECOND", "BYMINUTE", "BYHOUR", "BYYEARDAY", "BYWEEKNO"}
# Every 52 weeks is a year; a longer gap is no series a province books (and the
# booking horizon is two years by default).
MAX_INTERVAL = 52
MAX_RULE_LENGTH = 500
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_NAME = re.compile(r"[A-Z][A-Z-]*")
_DIGITS = re.compile(r"[0-9]+")  # RFC 5545: 1*DIGIT; ASCII only, no sign
_UNTIL = re.compile(r"([0-9]{8})(T[0-9]{6}Z)?")
_WEEKDAYNUM = re.compile(r"(?:([+-]?)([0-9]{1,2}))?(MO|TU|WE|TH|FR|SA|SU)")
_SIGNED = re.compile(r"([+-]?)([0-9]{1,3})")


class RecurrenceError(ValueError):
    """The RRULE is invalid or not acceptable (never ends, too frequent, too many)."""


@dataclass(frozen=True)
class Recurrence:
    """One parsed RRULE: every value checked; lists empty when the part is absent."""

    freq: str
    interval: int
    count: int | None
    until: datetime | None  # aware; a bare date is the end of that day in the zone
    byday: tuple[tuple[int, int | None], ...]  # (weekday 0=MO..6=SU, ordinal or None)
    bymonthday: tuple[int, ...]
    bymonth: tuple[int, ...]
    bysetpos: tuple[int, ...]
    wkst: int | None


def normalise(text: str) -> str:
    """The RRULE without an 'RRULE:' prefix, upper case, trimmed."""
    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    return text.upper()


def _split(rule_text: str) -> dict[str, str]:
    """NAME=VALUE parts, each name once."""
    parts: dict[str, str] = {}
    for part in rule_text.split(";"):
        if not part:
            raise RecurrenceError("invalid rrule: empty part (two ';' in a row, or one at "
                                  "the end)")
        name, equals, value = part.partition("=")
        if name == "DTSTART":
            raise RecurrenceError("rrule must not contain DTSTART: the conference start is used")
        if not equals or not _NAME.fullmatch(name):
            raise RecurrenceError(f"invalid rrule: {part[:40]!r} is not NAME=VALUE")
        if name not in _RFC_PARTS:
            raise RecurrenceError(f"invalid rrule: unknown part {name[:40]}")
        if name in parts:
            raise RecurrenceError(f"invalid rrule: {name} is given twice")
        if not value:
            raise RecurrenceError(f"invalid rrule: {name} has no value")
        parts[name] = value
    return parts


def _whole_number(name: str, value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise RecurrenceError(f"invalid rrule: {name} must be a whole number (digits only)")
    return int(value)


def _items(name: str, value: str) -> list[str]:
    items = value.split(",")
    if any(not item for item in items):
        raise RecurrenceError(f"invalid rrule: {name} has an empty item")
    return items


def _ordinals(name: str, value: str, high: int, *, signed: bool = True) -> tuple[int, ...]:
    """A list of [+/-]n with 1 <= n <= high (no sign where RFC 5545 allows none)."""
    numbers = []
    for item in _items(name, value):
        match = _SIGNED.fullmatch(item)
        if match is None or (match[1] and not signed):
            form = "numbers, optionally signed" if signed else "unsigned numbers"
            raise RecurrenceError(f"invalid rrule: {name} must be {form} (got {item[:20]!r})")
        number = int(match[2])
        if not 1 <= number <= high:
            scope = f"between 1 and {high}" + (f" (or -1 and -{high})" if signed else "")
            raise RecurrenceError(f"invalid rrule: {name} must be {scope}")
        numbers.append(-number if match[1] == "-" else number)
    return tuple(numbers)


def _weekday(name: str, value: str) -> int:
    if value not in WEEKDAYS:
        raise RecurrenceError(f"invalid rrule: {name} must be one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(value)


def _byday(value: str, freq: str) -> tuple[tuple[int, int | None], ...]:
    days: list[tuple[int, int | None]] = []
    highest = {"MONTHLY": 5, "YEARLY": 53}.get(freq)
    for item in _items("BYDAY", value):
        match = _WEEKDAYNUM.fullmatch(item)
        if match is None:
            raise RecurrenceError("invalid rrule: BYDAY must list days such as MO, TU, 1MO "
                                  f"or -1FR (got {item[:20]!r})")
        sign, digits, day = match.groups()
        ordinal = None
        if digits is not None:
            if highest is None:
                raise RecurrenceError("invalid rrule: BYDAY may number a day (1MO, -1FR) only "
                                      "with FREQ=MONTHLY or YEARLY")
            ordinal = int(digits)
            if not 1 <= ordinal <= highest:
                raise RecurrenceError(f"invalid rrule: a BYDAY number must be between 1 and "
                                      f"{highest} (or -1 and -{highest}) with FREQ={freq}")
            ordinal = -ordinal if sign == "-" else ordinal
        days.append((WEEKDAYS.index(day), ordinal))
    return tuple(days)


def _until(text: str, zone: ZoneInfo) -> datetime:
    """UNTIL as an aware datetime (a bare date means the end of that day in the zone)."""
    match = _UNTIL.fullmatch(text)
    if match is None:
        # RFC 5545 wants a date or a UTC date-time here (dateutil is lenient).
        raise RecurrenceError("invalid rrule: UNTIL must be a date (20271231) or a UTC "
                              "date-time (20271231T170000Z)")
    try:
        if match[2] is None:
            day = datetime.strptime(text, "%Y%m%d")
            return day.replace(hour=23, minute=59, second=59, tzinfo=zone)
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise RecurrenceError(f"invalid rrule: UNTIL {text} is not a valid date") from None


def parse(text: str, zone: ZoneInfo) -> Recurrence:
    """The RRULE `text` checked part by part (RFC 5545 grammar, meeting-sized ranges).

    Raises `RecurrenceError` naming the first problem."""
    rule_text = normalise(text)
    if not rule_text or "\n" in rule_text or "\r" in rule_text or len(rule_text) > \
            MAX_RULE_LENGTH:
        raise RecurrenceError("rrule must be one RFC 5545 RRULE line")
    parts = _split(rule_text)
    unsupported = sorted(set(parts) - ALLOWED_PARTS)
    if unsupported:
        raise RecurrenceError(f"rrule part {', '.join(unsupported)} is not supported for "
                              "conference bookings")
    freq = parts.get("FREQ")
    if freq is None:
        raise RecurrenceError("invalid rrule: FREQ is required")
    if freq in _TOO_FREQUENT:
        raise RecurrenceError("rrule may repeat at most daily (FREQ=DAILY/WEEKLY/MONTHLY/YEARLY)")
    if freq not in FREQUENCIES:
        raise RecurrenceError("invalid rrule: FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise RecurrenceError("rrule must end: give COUNT or UNTIL")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("rrule must not give both COUNT and UNTIL (RFC 5545)")
    interval = _whole_number("INTERVAL", parts.get("INTERVAL", "1"))
    if not 1 <= interval <= MAX_INTERVAL:
        raise RecurrenceError(f"rrule INTERVAL must be a whole number from 1 to {MAX_INTERVAL}")
    count = None
    if "COUNT" in parts:
        count = _whole_number("COUNT", parts["COUNT"])
        if count == 0:
            raise RecurrenceError("rrule COUNT=0 gives no occurrence")
    return Recurrence(
        freq=freq,
        interval=interval,
        count=count,
        until=_until(parts["UNTIL"], zone) if "UNTIL" in parts else None,
        byday=_byday(parts["BYDAY"], freq) if "BYDAY" in parts else (),
        bymonthday=_ordinals("BYMONTHDAY", parts["BYMONTHDAY"], 31)
        if "BYMONTHDAY" in parts else (),
        bymonth=_ordinals("BYMONTH", parts["BYMONTH"], 12, signed=False)
        if "BYMONTH" in parts else (),
        bysetpos=_ordinals("BYSETPOS", parts["BYSETPOS"], 366) if "BYSETPOS" in parts else (),
        wkst=_weekday("WKST", parts["WKST"]) if "WKST" in parts else None,
    )


def _largest_set(rule: Recurrence) -> int:
    """At most how many candidates one period (a day, week, month, year) can hold:
    BYSETPOS picks among them, so a position past this never matches."""
    plain = sum(1 for _, n in rule.byday if n is None)
    numbered = len(rule.byday) - plain
    months = len(set(rule.bymonth))
    monthdays = len(set(rule.bymonthday))
    if rule.freq == "DAILY":
        return 1
    if rule.freq == "WEEKLY":
        return len({day for day, _ in rule.byday}) or 1
    if rule.freq == "MONTHLY":
        by_weekday = 5 * plain + numbered
        if monthdays and by_weekday:
            return min(monthdays, by_weekday)
        return monthdays or by_weekday or 1
    # YEARLY: numbered days count within each chosen month, or within the year.
    by_weekday = (5 * plain + numbered) * months if months else 53 * plain + numbered
    by_monthday = monthdays * (months or 12)
    if by_weekday and by_monthday:
        return min(by_weekday, by_monthday, 366)
    return min(by_weekday or by_monthday or months or 1, 366)


def _check_occurs(rule: Recurrence, local_start: datetime) -> None:
    """Refuse rules that cheaply can be seen never to occur, or not at the start.

    dateutil compares with UNTIL only when a candidate matches, so a rule that
    never matches makes it search to the year 9999 (19 s for DAILY)."""
    if rule.bymonthday and rule.bymonth and not any(
        abs(day) <= _DAYS_IN_MONTH[month - 1] for day in rule.bymonthday for month in rule.bymonth
    ):
        raise RecurrenceError("rrule never occurs: no chosen month has the chosen day")
    if rule.bysetpos:
        if not (rule.byday or rule.bymonthday or rule.bymonth):
            raise RecurrenceError("invalid rrule: BYSETPOS needs BYDAY, BYMONTHDAY or BYMONTH "
                                  "(RFC 5545)")
        largest = _largest_set(rule)
        if all(abs(position) > largest for position in rule.bysetpos):
            period = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month"}.get(rule.freq, "year")
            raise RecurrenceError(f"rrule never occurs: BYSETPOS picks from at most {largest} "
                                  f"candidate(s) per {period}")
    # The start must be the first occurrence; what it must satisfy is checked here
    # first, so that such a rule is not searched for (DAILY;INTERVAL=7;BYDAY=TU
    # from a Monday never occurs at all).
    days_in_month = (local_start.replace(day=28) + timedelta(days=4)).replace(day=1) - \
        timedelta(days=1)
    from_end = local_start.day - days_in_month.day - 1  # -1: the last day of the month
    misses = (
        bool(rule.bymonth) and local_start.month not in rule.bymonth,
        bool(rule.bymonthday) and not {local_start.day, from_end} & set(rule.bymonthday),
        bool(rule.byday) and local_start.weekday() not in {day for day, _ in rule.byday},
    )
    if any(misses):
        raise RecurrenceError("the conference start must be the first occurrence of the rrule")


def build_rule(rule: Recurrence, local_start: datetime, until: datetime) -> rrule:
    """dateutil's rrule for `rule` from `local_start`, ending at `until` (aware, local)."""
    return rrule(
        FREQUENCIES[rule.freq],
        dtstart=local_start,
        interval=rule.interval,
        wkst=rule.wkst,
        until=until,
        bysetpos=rule.bysetpos or None,
        bymonth=rule.bymonth or None,
        bymonthday=rule.bymonthday or None,
        byweekday=[weekday(day, n) for day, n in rule.byday] or None,
        cache=False,
    )


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
    UNTIL), repeat at most daily, and not make occurrences overlap. The loop
    takes at most `max_occurrences` + 1 occurrences from dateutil; the time
    dateutil spends between two occurrences is bounded by the caller's worker
    process (`scheduler/recurrence_worker.py`)."""
    rule = parse(text, zone)
    if rule.count is not None and rule.count > max_occurrences:
        raise RecurrenceError(f"rrule gives more than {max_occurrences} occurrences")
    if rule.until is not None and rule.until > horizon_end:
        raise RecurrenceError("rrule runs past the booking horizon")
    local_start = start.astimezone(zone)
    _check_occurs(rule, local_start)

    # Expand only up to the horizon (or UNTIL), never to the year 9999. dateutil
    # drops the start's microseconds: they are added back to every occurrence.
    fraction = timedelta(microseconds=local_start.microsecond)
    bounded = build_rule(rule, local_start - fraction,
                         (rule.until or horizon_end).astimezone(zone))
    starts: list[datetime] = []
    try:
        for step, occurrence in enumerate(bounded):
            if rule.count is not None and step == rule.count:
                break
            if step == max_occurrences:  # the step budget of this loop
                raise RecurrenceError(f"rrule gives more than {max_occurrences} occurrences")
            starts.append((occurrence + fraction).astimezone(UTC))
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, RecurrenceError):
            raise
        raise RecurrenceError(f"invalid rrule: {exc}") from None
    if rule.count is not None and len(starts) < rule.count:
        raise RecurrenceError("rrule runs past the booking horizon")
    if not starts:
        raise RecurrenceError("rrule gives no occurrence")
    if starts[0] != start.astimezone(UTC):
        raise RecurrenceError("the conference start must be the first occurrence of the rrule")
    for earlier, later in itertools.pairwise(starts):
        if later < earlier + duration:
            raise RecurrenceError("occurrences of the rrule would overlap each other")
    return starts
