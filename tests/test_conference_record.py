"""The conference record through the API: a conference lived on a clock the test moves
(the real lifecycle runner, the roll call's reports, the room's floor reports), then
its record as JSON and as a PDF read back with a PDF text extractor."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

from pypdf import PdfReader

from scheduler import attendance
from scheduler.lifecycle_wiring import redial_policy
from tests import document_files
from tests.conftest import Client
from tests.support import manual_runner
from tests.test_booking import book
from tests.test_documents import upload
from vcbridge.core.app_keys import DATABASE, EVENT_BUS, SETTINGS
from vcbridge.core.audit import Actor
from vcbridge.core.clock import FixedClock
from vcbridge.room_reports import RoomReports

H = dict[str, str]
CHAIR, NGA, MUONG, YEN = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT", "HUYEN-YEN-DINH"
START = datetime.fromisoformat("2026-11-27T14:00:00+07:00")
TITLE = 'Giao ban <b>trực tuyến</b> tuần 48 & <img src=x onerror="alert(1)">'


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def local(minutes: float) -> str:
    return at(minutes).isoformat()


async def report(client: Client, cid: int, code: str, kind: str, minutes: float) -> None:
    app = client.app
    async with app[DATABASE].write() as session:
        assert await attendance.report(session, cid, code, kind, at(minutes),
                                       redial_policy(app[SETTINGS]), app[EVENT_BUS])


async def live_conference(client: Client, booker: H, clock: FixedClock) -> int:
    """A briefing of four sites lived from 13:45 to its extended end (16:30):

    the chair in from the start; Nga Son in, dropped at 14:30, back at 14:31, asks for
    the floor and gets it from a booker at the console, later is called on by the chair
    (its agent) and the floor taken back; Yen Dinh declines; Muong Lat never answers."""
    conference = await book(client, booker, title="Giao ban tuần", chair=CHAIR,
                            participants=[CHAIR, NGA, MUONG, YEN],
                            start=START.isoformat(), end=at(120).isoformat())
    cid = conference["id"]
    edited = await client.patch(f"/api/v1/conferences/{cid}", json={"title": TITLE},
                                headers=booker)
    assert edited.status == 200, await edited.text()
    app = client.app
    runner = manual_runner(app, clock)
    clock.set(at(-15))
    await runner.sync(cid)  # the room opens
    clock.set(START)
    await runner.sync(cid)  # live
    await runner._tick()  # everyone invited
    await report(client, cid, CHAIR, "joined", 2 / 60)
    await report(client, cid, NGA, "joined", 5 / 60)
    await report(client, cid, YEN, "declined", 10 / 60)
    # Muong Lat never answers: invited again and again, absent after four attempts.
    for second in range(15, 420, 5):
        clock.set(START + timedelta(seconds=second))
        await runner._tick()
    await report(client, cid, NGA, "dropped", 30)
    await report(client, cid, NGA, "joined", 31)
    reports = RoomReports(app)
    clock.set(at(40))
    await reports.floor_action(cid, NGA, "floor.request", {})
    clock.set(at(41))
    await reports.floor_action(cid, CHAIR, "floor.grant", {"endpoint": NGA},
                               moderator=Actor("booker1", "booker"))
    clock.set(at(45))
    await reports.floor_action(cid, NGA, "floor.release", {})
    clock.set(at(60))
    await reports.floor_action(cid, CHAIR, "floor.grant", {"endpoint": NGA})
    clock.set(at(65))
    await reports.floor_action(cid, CHAIR, "floor.revoke", {})
    clock.set(at(110))
    extended = await client.post(f"/api/v1/conferences/{cid}/extend", json={"minutes": 30},
                                 headers=booker)
    assert extended.status == 200, await extended.text()
    clock.set(at(150))
    await runner.reconcile()  # the (extended) end
    return int(cid)


async def test_the_record_of_a_briefing(client: Client, booker: H, admin: H,
                                        clock: FixedClock, make_user: Any) -> None:
    cid = await live_conference(client, booker, clock)
    attached = await upload(client, booker, cid, document_files.pdf("Báo cáo giao ban"),
                            filename="bao-cao-tuan.pdf", title="Báo cáo tuần")
    nga_operator = await make_user("op-nga-son", "operator", NGA)
    response = await client.get(f"/api/v1/conferences/{cid}/record", headers=nga_operator)
    assert response.status == 200, await response.text()
    record = await response.json()

    assert record["final"] is True
    conference = record["conference"]
    assert conference["title"] == TITLE and conference["status"] == "ended"
    assert conference["chair_name"] == "Văn phòng UBND tỉnh"
    assert (conference["opened_at"], conference["live_at"], conference["ended_at"]) == (
        local(-15), local(0), local(150))
    assert record["summary"] == {"expected": 4, "attended": 2, "never_came": 2}

    people = {a["code"]: a for a in record["attendance"]}
    assert list(people) == [CHAIR, MUONG, NGA, YEN]  # roster order
    assert people[CHAIR]["chair"] is True
    assert people[CHAIR]["intervals"] == [
        {"start": local(2 / 60), "end": local(150), "ended_by": "end"}]
    # Nga Son dropped and came back: two intervals, 149 minutes 55 seconds in all.
    assert people[NGA]["intervals"] == [
        {"start": local(5 / 60), "end": local(30), "ended_by": "dropped"},
        {"start": local(31), "end": local(150), "ended_by": "end"}]
    assert people[NGA]["present_seconds"] == 30 * 60 - 5 + 119 * 60
    assert people[NGA]["absence"] is None and people[NGA]["attended"] is True
    # Those who never came keep why, after the end too.
    assert (people[MUONG]["attended"], people[MUONG]["absence"]) == (False, "absent")
    assert people[MUONG]["invitations"] >= 4 and people[MUONG]["intervals"] == []
    assert (people[YEN]["absence"], people[YEN]["invitations"]) == ("declined", 1)
    rollcall = await (await client.get(f"/api/v1/conferences/{cid}/rollcall",
                                       headers=admin)).json()
    assert {e["code"]: e["state"] for e in rollcall["endpoints"]} == {
        CHAIR: "left", NGA: "left", MUONG: "absent", YEN: "declined"}

    # The floor: who spoke, when, granted by whom (the person when one acted).
    assert record["floor"] == [
        {"endpoint": NGA, "name": "UBND huyện Nga Sơn", "requested_at": local(40),
         "granted_at": local(41), "until": local(45), "ended_by": "released",
         "seconds": 240,
         "granted_by": {"endpoint": CHAIR, "user": "booker1", "role": "booker"}},
        {"endpoint": NGA, "name": "UBND huyện Nga Sơn", "requested_at": None,
         "granted_at": local(60), "until": local(65), "ended_by": "revoked", "seconds": 300,
         "granted_by": {"endpoint": CHAIR, "user": None, "role": None}},
    ]
    # The booking's history: booked, retitled, extended while live.
    assert [(c["action"], c["user"], [f["field"] for f in c["fields"]])
            for c in record["changes"]] == [
        ("created", "booker1", []), ("edited", "booker1", ["title"]),
        ("extended", "booker1", ["end"])]
    assert record["changes"][1]["fields"][0] == {
        "field": "title", "before": "Giao ban tuần", "after": TITLE}
    assert record["changes"][2]["fields"][0]["after"] == local(150)
    # A participant's operator is not shown the recordings, but sees the documents.
    assert record["recordings"] is None
    assert [(d["id"], d["title"], d["filename"], d["sha256"]) for d in record["documents"]] == [
        (attached["id"], "Báo cáo tuần", "bao-cao-tuan.pdf", attached["sha256"])]

    chair_operator = await make_user("op-ubnd-tinh", "operator", CHAIR)
    chair_view = await (await client.get(f"/api/v1/conferences/{cid}/record",
                                         headers=chair_operator)).json()
    assert chair_view["recordings"] == []  # the chair may read them: there are none


async def test_the_pdf_is_the_vietnamese_minutes_with_user_text_as_text(
    client: Client, booker: H, clock: FixedClock, make_user: Any
) -> None:
    cid = await live_conference(client, booker, clock)
    response = await client.get(f"/api/v1/conferences/{cid}/record.pdf", headers=booker)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/pdf"
    assert response.headers["Content-Disposition"].startswith(
        f'attachment; filename="bien-ban-hoi-nghi-{cid}.pdf"')
    reader = PdfReader(io.BytesIO(await response.read()))
    # Words as read, whatever line a table cell wrapped them onto.
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert "BIÊN BẢN HỘI NGHỊ TRUYỀN HÌNH TRỰC TUYẾN" in text
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text
    assert "Thanh Hóa, ngày 27 tháng 11 năm 2026" in text
    # The title as typed, markup and all, drawn as text.
    assert TITLE in text
    for expected in ("UBND huyện Nga Sơn", "14:00 – 14:30", "Vắng mặt", "Báo vắng",
                     "booker1 (cán bộ đặt lịch)", "Gia hạn"):
        assert expected in text, expected
    assert reader.metadata is not None and reader.metadata.title == f"Biên bản hội nghị: {TITLE}"
    fonts = {str(font["/BaseFont"]) for page in reader.pages
             for font in page["/Resources"]["/Font"].values()}
    assert fonts and all("DejaVuSerif" in name for name in fonts)  # embedded, not a core font


async def test_the_record_is_for_those_who_may_see_the_conference(
    client: Client, booker: H, admin: H, make_user: Any
) -> None:
    conference = await book(client, booker, participants=[CHAIR, NGA])
    cid = conference["id"]
    other = await make_user("op-so-tttt", "operator", "SO-TTTT")
    for path in (f"/api/v1/conferences/{cid}/record", f"/api/v1/conferences/{cid}/record.pdf"):
        response = await client.get(path, headers=other)
        assert response.status == 404, path  # as if it did not exist
        assert (await response.json())["error"]["code"] == "not_found"
    missing = await client.get("/api/v1/conferences/999999/record", headers=admin)
    assert missing.status == 404
    bad = await client.get("/api/v1/conferences/abc/record", headers=admin)
    assert bad.status == 404  # not a conference route at all
    it_staff = await make_user("it1", "it")
    record = await (await client.get(f"/api/v1/conferences/{cid}/record",
                                     headers=it_staff)).json()
    assert record["final"] is False and record["recordings"] == []
    assert {a["absence"] for a in record["attendance"]} == {"waiting"}


async def test_a_cancelled_occurrence_of_a_series(client: Client, booker: H) -> None:
    series = await book(client, booker, participants=[CHAIR, NGA],
                        start="2026-12-01T08:00:00+07:00", end="2026-12-01T09:00:00+07:00",
                        rrule="FREQ=WEEKLY;COUNT=3")
    second = series["occurrence_ids"][1]
    cancelled = await client.delete(f"/api/v1/conferences/{second}", headers=booker)
    assert cancelled.status == 200, await cancelled.text()
    record = await (await client.get(f"/api/v1/conferences/{second}/record",
                                     headers=booker)).json()
    assert record["final"] is True and record["conference"]["ended_at"] is None
    # Booked once for the whole series, cancelled alone.
    assert [(c["action"], c["occurrences"]) for c in record["changes"]] == [
        ("created", 3), ("cancelled", None)]
    assert {a["absence"] for a in record["attendance"]} == {"not_invited"}
    assert record["floor"] == [] and record["summary"]["attended"] == 0
    pdf = await client.get(f"/api/v1/conferences/{second}/record.pdf", headers=booker)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(await pdf.read())).pages)
    assert "Đã hủy" in text and "Đặt lịch định kỳ (3 lần họp)" in text
