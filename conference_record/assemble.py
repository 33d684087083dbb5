"""Puts the record together: the stored facts through the timeline, plus the recordings
and the documents, as the response model (the PDF is drawn from the same model)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from conference_record import timeline
from conference_record.responses import (
    AttendanceInterval,
    ConferenceRecord,
    FloorGranter,
    RecordAttendance,
    RecordChange,
    RecordConference,
    RecordDocument,
    RecordFieldChange,
    RecordFloorTurn,
    RecordRecording,
    RecordSummary,
    field_value,
)
from conference_record.sources import DocumentEntry, RecordingEntry
from conference_record.store import RecordFacts
from vcbridge.core.clock import to_local_iso
from vcbridge.core.db.models import Conference, ConferenceStatus


def build(conference: Conference, facts: RecordFacts, recordings: list[RecordingEntry] | None,
          documents: list[DocumentEntry] | None, now: datetime, zone: ZoneInfo
          ) -> ConferenceRecord:
    """The record of `conference` as it stands at `now`."""

    def when(value: datetime) -> str:
        return to_local_iso(value, zone)

    def maybe(value: datetime | None) -> str | None:
        return None if value is None else when(value)

    names = {p.code: p.name for p in facts.participants}
    chair = conference.chair.code
    attendees = timeline.attendance([p.code for p in facts.participants], chair,
                                    facts.attendance, facts.events, facts.closed_at)
    turns = timeline.floor_log(facts.events, facts.closed_at)
    changes = timeline.booking_changes(facts.audit)
    attended = sum(1 for a in attendees if a.absence is None)
    final = conference.status in (ConferenceStatus.ENDED, ConferenceStatus.CANCELLED)
    # The calendar's cancellation reason (issue 13); an older schema has none.
    cancel_reason = str(getattr(conference, "cancel_reason", "") or "")
    return ConferenceRecord(
        conference=RecordConference(
            id=conference.id, title=conference.title, agenda=conference.agenda,
            status=conference.status, chair=chair, chair_name=conference.chair.name,
            start=when(conference.start), end=when(conference.end),
            setup_minutes=conference.setup_minutes, series_id=conference.series_id,
            opened_at=maybe(conference.opened_at), live_at=maybe(conference.live_at),
            ended_at=maybe(facts.closed_at if conference.opened_at else None),
            cancel_reason=cancel_reason,
        ),
        final=final,
        generated_at=when(now),
        summary=RecordSummary(expected=len(attendees), attended=attended,
                              never_came=len(attendees) - attended),
        attendance=[
            RecordAttendance(
                code=a.code, name=names.get(a.code, a.code), chair=a.chair,
                attended=a.absence is None,
                intervals=[AttendanceInterval(start=when(i.start), end=maybe(i.end),
                                              ended_by=i.ended_by) for i in a.intervals],
                present_seconds=a.present_seconds(now), absence=a.absence,
                invitations=a.invitations,
            )
            for a in attendees
        ],
        floor=[
            RecordFloorTurn(
                endpoint=t.code, name=names.get(t.code, t.code),
                requested_at=maybe(t.requested_at), granted_at=when(t.granted_at),
                granted_by=FloorGranter(endpoint=t.granted_by.endpoint, user=t.granted_by.user,
                                        role=t.granted_by.role),
                until=maybe(t.ended_at), ended_by=t.ended_by,
                seconds=max(0, int(((t.ended_at or now) - t.granted_at).total_seconds())),
            )
            for t in turns
        ],
        recordings=None if recordings is None else [
            RecordRecording(id=r.name, started=when(r.started), size=r.size,
                            duration=r.duration, recording=r.recording)
            for r in recordings
        ],
        documents=None if documents is None else [
            RecordDocument(id=d.id, title=d.title, filename=d.filename,
                           media_type=d.media_type, size=d.size, sha256=d.sha256,
                           uploaded_at=when(d.uploaded_at), uploaded_by=d.uploaded_by,
                           series=d.series)
            for d in documents
        ],
        changes=[
            RecordChange(
                at=when(c.at), user=c.actor, role=c.role, action=c.kind,
                fields=[RecordFieldChange(field=f.field, before=field_value(f.before),
                                          after=field_value(f.after)) for f in c.fields],
                occurrences=c.occurrences, reason=c.reason,
            )
            for c in changes
        ],
    )
