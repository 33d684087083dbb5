"""The record's rules on fixed facts, without a database: attendance intervals and why a
site never came, the floor log, the booking's history; and the PDF's text handling."""

from __future__ import annotations

import io
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from pypdf import PdfReader

from conference_record.minutes_pdf import MinutesStyle, clean, duration, render_pdf, size
from conference_record.responses import (
    AttendanceInterval,
    ConferenceRecord,
    RecordAttendance,
    RecordConference,
    RecordSummary,
)
from conference_record.timeline import (
    Absence,
    AttendanceFact,
    AuditFact,
    ChangeKind,
    EndedBy,
    EventFact,
    FloorEnd,
    Granter,
    Interval,
    attendance,
    booking_changes,
    floor_log,
)

T0 = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # 14:00 in Hanoi
CHAIR, NGA, MUONG, YEN = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT", "HUYEN-YEN-DINH"


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Events:
    """Events in the order they are added (their sequence numbers)."""

    def __init__(self) -> None:
        self.items: list[EventFact] = []

    def add(self, minutes: float, kind: str, actor: str | None = None,
            **data: Any) -> Events:
        """An event `kind` by (or about) `actor`; `data` as published (`endpoint`: the target)."""
        self.items.append(EventFact(len(self.items) + 1, m(minutes), kind, actor, data))
        return self


def test_intervals_of_a_site_that_drops_leaves_and_comes_back() -> None:
    events = (Events()
              .add(0, "endpoint.joined", CHAIR).add(1, "endpoint.joined", NGA)
              .add(10, "endpoint.dropped", NGA).add(11, "endpoint.joined", NGA)
              .add(11.5, "endpoint.joined", NGA)  # a duplicate changes nothing
              .add(30, "endpoint.left", NGA).add(40, "endpoint.joined", NGA)
              .add(50, "floor.remove", CHAIR, endpoint=NGA).add(50, "endpoint.left", NGA))
    people = attendance([CHAIR, NGA], CHAIR, {}, events.items, m(60))
    assert people[0].intervals == (Interval(m(0), m(60), EndedBy.END),)
    assert people[1].intervals == (
        Interval(m(1), m(10), EndedBy.DROPPED), Interval(m(11), m(30), EndedBy.LEFT),
        Interval(m(40), m(50), EndedBy.REMOVED))
    assert people[1].present_seconds(m(99)) == (9 + 19 + 10) * 60
    # While the conference runs, an interval stays open and counts up to now.
    running = attendance([CHAIR], CHAIR, {}, events.items[:1], None)
    assert running[0].intervals == (Interval(m(0), None, None),)
    assert running[0].present_seconds(m(5)) == 300


def test_why_a_site_never_came() -> None:
    events = (Events().add(0, "endpoint.invited", MUONG).add(1, "endpoint.invited", MUONG)
              .add(2, "endpoint.absent", MUONG).add(0, "endpoint.invited", YEN)
              .add(0.5, "endpoint.declined", YEN).add(0, "endpoint.invited", NGA))
    rows = {MUONG: AttendanceFact("absent", 2, True), YEN: AttendanceFact("declined", 1, False),
            NGA: AttendanceFact("no_answer", 1, False)}
    sites = [CHAIR, MUONG, NGA, YEN]
    people = {a.code: a for a in attendance(sites, CHAIR, rows, events.items, m(60))}
    assert people[MUONG].absence is Absence.ABSENT and people[MUONG].invitations == 2
    assert people[YEN].absence is Absence.DECLINED
    assert people[NGA].absence is Absence.NO_ANSWER
    assert people[CHAIR].absence is Absence.NOT_INVITED  # no row, no invitation
    # An older service closed every row as "left": the events still tell why.
    legacy = {code: AttendanceFact("left", fact.attempts, fact.escalated)
              for code, fact in rows.items()}
    old = {a.code: a.absence for a in attendance(sites, CHAIR, legacy, events.items, m(60))}
    assert old == {CHAIR: Absence.NOT_INVITED, MUONG: Absence.ABSENT, NGA: Absence.NO_ANSWER,
                   YEN: Absence.DECLINED}
    # While it runs, a site not in yet is waiting.
    live = attendance([NGA], CHAIR, {NGA: AttendanceFact("invited", 1, False)},
                      events.items, None)
    assert live[0].absence is Absence.WAITING


def test_the_floor_log() -> None:
    by = {"user": "booker1", "role": "booker"}
    events = (Events()
              .add(1, "floor.request", NGA).add(2, "floor.request", MUONG)
              .add(3, "floor.grant", CHAIR, endpoint=NGA)
              .add(4, "floor.grant", CHAIR, endpoint=NGA)  # granted again: same turn
              .add(5, "floor.grant", CHAIR, endpoint=MUONG, by=by)  # Nga Son loses it
              .add(6, "floor.release", NGA)  # not the holder: nothing
              .add(7, "floor.release", MUONG)
              .add(8, "floor.request", YEN).add(9, "floor.refuse", CHAIR, endpoint=YEN)
              .add(10, "floor.grant", CHAIR, endpoint=YEN)  # called on after the refusal
              .add(11, "floor.remove", CHAIR, endpoint=YEN)
              .add(12, "floor.grant", CHAIR, endpoint=NGA).add(13, "floor.revoke", CHAIR)
              .add(14, "floor.grant", CHAIR, endpoint=MUONG))
    turns = floor_log(events.items, m(20))
    assert [(t.code, t.requested_at, t.granted_at, t.ended_at, t.ended_by) for t in turns] == [
        (NGA, m(1), m(3), m(5), FloorEnd.NEXT),
        (MUONG, m(2), m(5), m(7), FloorEnd.RELEASED),
        (YEN, None, m(10), m(11), FloorEnd.REMOVED),
        (NGA, None, m(12), m(13), FloorEnd.REVOKED),
        (MUONG, None, m(14), m(20), FloorEnd.END),
    ]
    assert turns[0].granted_by == Granter(CHAIR)
    assert turns[1].granted_by == Granter(CHAIR, "booker1", "booker")
    # While the conference runs, the holder's turn is open.
    assert floor_log(events.items, None)[-1].ended_at is None


def test_the_booking_history() -> None:
    base = {"title": "Giao ban", "start": "2026-11-27T14:00:00+07:00",
            "end": "2026-11-27T16:00:00+07:00", "status": "scheduled",
            "participants": [CHAIR, NGA]}
    live = {**base, "status": "live"}
    audit = [
        AuditFact(m(-60), "booker1", "booker", "conference.create", None,
                  {**base, "occurrences": [1, 2, 3]}),
        AuditFact(m(-30), "admin", "admin", "conference.update", base,
                  {**base, "title": "Giao ban (đổi)", "participants": [CHAIR, NGA, YEN],
                   "updated_at": "x"}),
        AuditFact(m(100), "op-ubnd-tinh", "operator", "conference.update", live,
                  {**live, "end": "2026-11-27T16:30:00+07:00"}),
        AuditFact(m(-20), "booker1", "booker", "conference.update", base,
                  {**base, "end": "2026-11-27T16:30:00+07:00"}),  # not running: an edit
        AuditFact(m(200), "booker1", "booker", "conference.cancel", live,
                  {**live, "status": "cancelled", "cancel_reason": "Mất điện"}),
    ]
    changes = booking_changes(audit)
    assert [(c.kind, c.actor) for c in changes] == [
        (ChangeKind.CREATED, "booker1"), (ChangeKind.EDITED, "admin"),
        (ChangeKind.EDITED, "booker1"), (ChangeKind.EXTENDED, "op-ubnd-tinh"),
        (ChangeKind.CANCELLED, "booker1")]
    assert changes[0].occurrences == 3
    assert [f.field for f in changes[1].fields] == ["title", "participants"]
    assert changes[4].reason == "Mất điện"


def _record(title: str, sites: int) -> ConferenceRecord:
    start = "2026-11-27T14:00:00+07:00"
    return ConferenceRecord(
        conference=RecordConference(
            id=7, title=title, agenda="Dòng 1\nDòng 2", status="ended", chair=CHAIR,
            chair_name="Văn phòng UBND tỉnh", start=start, end="2026-11-27T16:00:00+07:00",
            setup_minutes=15, series_id=None, opened_at=None, live_at=None, ended_at=None,
            cancel_reason=""),
        final=True, generated_at="2026-11-27T16:05:00+07:00",
        summary=RecordSummary(expected=sites, attended=sites, never_came=0),
        attendance=[RecordAttendance(
            code=f"SITE-{i}", name=f"UBND xã Đông Hòa số {i}", chair=i == 0, attended=True,
            intervals=[AttendanceInterval(start=start, end="2026-11-27T16:00:00+07:00",
                                          ended_by="end")],
            present_seconds=7200, absence=None, invitations=1) for i in range(sites)],
        floor=[], recordings=[], documents=[], changes=[])


def test_the_pdf_draws_user_text_as_text_in_precomposed_vietnamese() -> None:
    # Typed with combining marks (NFD) and markup-like characters.
    title = unicodedata.normalize("NFD", "Hội nghị **khẩn** __về__ <b>lũ</b> ~~lụt~~ \\ ")
    pdf = render_pdf(_record(title, 40), MinutesStyle("UBND TỈNH THANH HÓA", "Thanh Hóa"))
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert "Hội nghị **khẩn** __về__ <b>lũ</b> ~~lụt~~ \\" in text
    assert len(reader.pages) >= 2  # forty sites: the table goes on over the page
    assert all(f"UBND xã Đông Hòa số {i} " in text for i in range(40))
    assert text.count("STT") >= 3  # the table's heading repeated on the new page


def test_numbers_and_durations_read_the_vietnamese_way() -> None:
    assert size(1_572_864) == "1,5 MB" and size(512) == "512 B"
    assert duration(40) == "40 giây" and duration(720) == "12 phút"
    assert duration(3900) == "1 giờ 05 phút"
    assert clean("a\x00b\x1bc\nđe\u0301") == "abc\nđé"  # controls out, marks composed
