"""The booking calendar (/calendar) end to end in a real headless Chromium.

A real `vcbridge serve` process and Debian's `/usr/bin/chromium` driven by
Playwright's Python package, shared by the module's tests. A booker logs in and books a
weekly briefing for all 31 endpoints from the calendar's form, sees an overlapping
booking refused inline (the endpoint and the other conference named) before saving,
edits one occurrence of a series only, cancels one with a reason, extends a running
conference and attaches a PDF from the form; IT staff read the calendar without booking.
Each step is checked through the API as well as on the page.

Screenshots of every state, at 1366x768 and on a phone (390x844), go to
`test-artifacts/browser/calendar/` (or $VCBRIDGE_TEST_ARTIFACTS/browser/calendar).
Skips without Chromium on a developer's machine, fails in CI (VCBRIDGE_REQUIRE_ALL=1)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from harness.chromium import chromium_missing, log_in, new_page, password_of, running_chromium
from harness.service_process import Service, service_env
from tests.support import skip_or_fail

pytestmark = pytest.mark.asyncio(loop_scope="module")

ARTIFACTS = Path(os.environ.get(
    "VCBRIDGE_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
SHOTS = ARTIFACTS / "browser" / "calendar"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 768}
BOOKER = "booker-cal"
IT = "it-cal"
HOSTILE = 'Họp <img src=x onerror="alert(1)"> & <b>đậm</b>'
BRIEFING = "Giao ban trực tuyến hằng tuần"


def monday_in(weeks: int) -> date:
    """The Monday `weeks` weeks after this one (local dates)."""
    today = datetime.now(ZONE).date()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks)


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).isoformat()


def ddmmyyyy(day: date) -> str:
    return day.strftime("%d/%m/%Y")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    missing = chromium_missing()
    if missing:
        skip_or_fail(missing)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):  # this run's screenshots only
        old.unlink()
    started = Service(tmp_path_factory.mktemp("calendar-service"),
                      service_env(VCBRIDGE_ICE_HOST_ADDRESSES="127.0.0.1"))
    try:
        started.wait_healthy(timeout=60)
        started.login()
        for username, role in ((BOOKER, "booker"), (IT, "it")):
            started.add_user(username, role, password_of(username))
        yield started
    finally:
        started.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(service: Service) -> AsyncIterator[Any]:
    async with running_chromium() as browser:
        yield browser


def book(service: Service, **body: Any) -> dict[str, Any]:
    status, answer = service.request("POST", "/api/v1/conferences", {
        "agenda": "", "setup_minutes": 15, **body})
    assert status == 201, answer
    return dict(answer)


def conference(service: Service, cid: int) -> dict[str, Any]:
    status, body = service.request("GET", f"/api/v1/conferences/{cid}")
    assert status == 200, body
    return dict(body)


def listed(service: Service, **params: str) -> list[dict[str, Any]]:
    from urllib.parse import urlencode

    status, body = service.request("GET", f"/api/v1/conferences?{urlencode(params)}")
    assert status == 200, body
    return list(body["conferences"])


async def shot(page: Any, name: str, *, phone: bool = False) -> None:
    """Save the page at 1366x768 (and, with `phone`, at 390x844 too)."""
    await page.screenshot(path=str(SHOTS / f"{name}.png"))
    if phone:
        await page.set_viewport_size(PHONE)
        await page.wait_for_timeout(150)
        await page.screenshot(path=str(SHOTS / f"{name}-phone.png"))
        await page.set_viewport_size(DESKTOP)
        await page.wait_for_timeout(150)


async def open_week(page: Any, monday: date, view: str = "week") -> None:
    await page.goto(f"/calendar?view={view}&date={monday.isoformat()}")
    await page.wait_for_selector(f"#cal-view[data-state=ready][data-view={view}]")


async def check_state(page: Any, state: str) -> str:
    """Wait for the form's clash check to reach `state`; its text."""
    await page.wait_for_selector(f"#cal-check[data-state={state}]", timeout=10000)
    return str(await page.text_content("#cal-check"))


async def test_booker_books_a_weekly_briefing_for_every_endpoint_and_sees_a_clash_first(
    service: Service, browser: Any
) -> None:
    monday = monday_in(2)
    # Other meetings of the week, for the views to show: one titled with markup, one
    # cancelled.
    hostile = book(service, title=HOSTILE, chair="SO-TTTT",
                   participants=["SO-TTTT", "HUYEN-HA-TRUNG", "HUYEN-YEN-DINH"],
                   start=at(monday + timedelta(days=1), 9), end=at(monday + timedelta(days=1), 11))
    for offset, hour, chair, sites in ((1, 14, "TINH-UY", ["HUYEN-BA-THUOC", "HUYEN-CAM-THUY"]),
                                       (2, 8, "DBQH-HDND", ["TP-SAM-SON", "TX-BIM-SON"]),
                                       (2, 9, "SO-TTTT", ["HUYEN-QUAN-HOA", "HUYEN-QUAN-SON"]),
                                       (3, 13, "UBND-TINH", ["TP-THANH-HOA", "HUYEN-THO-XUAN"])):
        day = monday + timedelta(days=offset)
        book(service, title=f"Họp chuyên đề {offset}-{hour}", chair=chair,
             participants=[chair, *sites], start=at(day, hour, 30), end=at(day, hour + 2))
    dropped = book(service, title="Tập huấn chuyển đổi số", chair="SO-TTTT",
                   participants=["SO-TTTT", "HUYEN-NONG-CONG"],
                   start=at(monday + timedelta(days=4), 14), end=at(monday + timedelta(days=4), 16))
    status, _ = service.request("DELETE", f"/api/v1/conferences/{dropped['id']}",
                                {"reason": "Dời sang tháng sau"})
    assert status == 200

    errors: list[str] = []
    page = await new_page(browser, service.base, errors)
    try:
        await page.goto("/calendar")
        await page.wait_for_selector("#login-form")
        await shot(page, "cal-00-login")
        await log_in(page, "/calendar", BOOKER)
        await page.wait_for_selector("#cal-view[data-state=ready][data-view=week]")
        await open_week(page, monday)
        # A title with markup is text: no element made from it.
        block = page.locator(f".cal-event[data-id='{hostile['id']}'] .cal-event-title")
        assert await block.text_content() == HOSTILE
        assert await page.locator("#cal-view img").count() == 0
        cancelled = page.locator(f".cal-event[data-id='{dropped['id']}'].cal-st-cancelled")
        assert await cancelled.count() == 1
        await shot(page, "cal-01-week", phone=True)

        # The form, opened from the keyboard.
        await page.focus("#cal-new")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#cal-form-dialog[open]")
        await page.fill("#cal-title", BRIEFING)
        await page.fill("#cal-agenda",
                        "1. Tình hình kinh tế - xã hội trong tuần\n2. Nhiệm vụ tuần tới")
        await page.fill("#cal-date", ddmmyyyy(monday))
        await page.fill("#cal-start", "7:30")
        await page.fill("#cal-end", "0900")
        await page.press("#cal-end", "Tab")
        assert await page.input_value("#cal-start") == "07:30"  # written back in 24 h
        assert await page.input_value("#cal-end") == "09:00"
        await page.fill("#cal-setup", "15")
        await page.select_option("#cal-repeat", "weekly")
        assert "Thứ Hai" in (await page.locator("#cal-repeat option:checked").text_content() or "")
        await page.check("#cal-repeat-end-count")
        await page.fill("#cal-repeat-count", "4")
        await page.select_option("#cal-chair", "UBND-TINH")
        # The search finds a name typed without diacritics, "đ" as "d" too.
        await page.fill("#cal-picker-search", "nga son")
        assert await page.locator(".picker-item:visible .picker-name").all_text_contents() == [
            "UBND huyện Nga Sơn"]
        await page.fill("#cal-picker-search", "dong son")
        assert await page.locator(".picker-item:visible .picker-name").all_text_contents() == [
            "UBND huyện Đông Sơn"]
        await page.fill("#cal-picker-search", "")
        await page.check("#cal-picker-group-all")
        assert await page.text_content(".picker-count") == "Đã chọn 31/31 điểm cầu"
        assert await page.is_checked("#cal-picker-group-district")
        text = await check_state(page, "ok")
        assert "cả 4 lần họp đều trống" in text
        await shot(page, "cal-02-form-new", phone=True)
        await page.click("#cal-save")
        await page.wait_for_selector("#cal-form-dialog:not([open])", state="attached")
        await page.wait_for_selector(".toast:not([hidden])")
        assert BRIEFING in (await page.text_content("#toast") or "")

        briefings = [c for c in listed(service, **{"from": at(monday, 0), "to": at(
            monday + timedelta(weeks=5), 0)}) if c["title"] == BRIEFING]
        assert [c["start"] for c in briefings] == [
            at(monday + timedelta(weeks=w), 7, 30) for w in range(4)]
        assert all(len(c["participants"]) == 31 and c["chair"] == "UBND-TINH"
                   and c["setup_minutes"] == 15 for c in briefings)
        assert briefings[0]["rrule"].startswith("FREQ=WEEKLY;BYDAY=MO;COUNT=4")
        first = briefings[0]["id"]
        await page.wait_for_selector(f".cal-event[data-id='{first}']")
        await shot(page, "cal-03-week-booked", phone=True)

        # The other views of the same week.
        await page.click("#cal-view-month")
        await page.wait_for_selector("#cal-view[data-state=ready][data-view=month]")
        await page.wait_for_selector(f".cal-chip[data-id='{first}']")
        await shot(page, "cal-04-month", phone=True)
        await page.click("#cal-view-list")
        await page.wait_for_selector("#cal-view[data-state=ready][data-view=list]")
        assert await page.locator(f".cal-list-row[data-id='{first}']").count() == 1
        await shot(page, "cal-05-list", phone=True)
        await open_week(page, monday, "day")
        await page.wait_for_selector(f".cal-event[data-id='{first}']")
        await shot(page, "cal-06-day", phone=True)
        # The endpoint filter: only what Nga Son takes part in.
        await open_week(page, monday)
        await page.select_option("#cal-endpoint", "HUYEN-NGA-SON")
        await page.wait_for_function(
            "() => document.querySelectorAll('.cal-event').length === 1")
        assert "endpoint=HUYEN-NGA-SON" in page.url
        await page.select_option("#cal-endpoint", "")
        await page.wait_for_function(
            "() => document.querySelectorAll('.cal-event').length > 1")

        # Another meeting of Nga Son at 08:00 that Monday: refused inline before saving,
        # naming the endpoint and the briefing with its time.
        before = len(listed(service))
        await page.click("#cal-new")
        await page.wait_for_selector("#cal-form-dialog[open]")
        await page.fill("#cal-title", "Họp bàn công tác phòng chống lụt bão")
        await page.fill("#cal-date", ddmmyyyy(monday))
        await page.fill("#cal-start", "08:00")
        await page.fill("#cal-end", "09:30")
        await page.select_option("#cal-chair", "SO-TTTT")
        await page.fill("#cal-picker-search", "nga son")
        await page.press("#cal-picker-search", "Enter")  # ticks the match
        assert await page.is_checked("#cal-picker-ep-HUYEN-NGA-SON")
        text = await check_state(page, "conflict")
        assert "UBND huyện Nga Sơn" in text
        assert BRIEFING in text and "07:30–09:00" in text
        assert ddmmyyyy(monday) in text
        assert await page.locator("#cal-conflicts li").count() == 1
        await shot(page, "cal-07-conflict", phone=True)
        # Saving anyway: the booking's own refusal, shown the same way; nothing booked.
        await page.click("#cal-save")
        await check_state(page, "conflict")
        assert len(listed(service)) == before
        # Fixed by moving it after the briefing: clear.
        await page.fill("#cal-start", "09:30")
        await page.fill("#cal-end", "11:00")
        await check_state(page, "ok")
        # A rule the API refuses (a start in the past) shows next to its field.
        await page.fill("#cal-date", ddmmyyyy(datetime.now(ZONE).date() - timedelta(days=2)))
        await check_state(page, "invalid")
        assert await page.text_content("#cal-start-error") == "Thời điểm bắt đầu đã qua."
        assert await page.get_attribute("#cal-start", "aria-invalid") == "true"
        await shot(page, "cal-08-field-error")
        await page.keyboard.press("Escape")
        await page.wait_for_selector("#cal-form-dialog:not([open])", state="attached")
        assert len(listed(service)) == before
    finally:
        await page.context.close()
    assert errors == []


async def test_booker_edits_one_occurrence_then_cancels_another_with_a_reason(
    service: Service, browser: Any
) -> None:
    monday = monday_in(8)
    series = book(service, title="Giao ban khối nội chính", chair="TINH-UY",
                  participants=["TINH-UY", "UBND-TINH", "HUYEN-VINH-LOC", "HUYEN-TRIEU-SON"],
                  start=at(monday + timedelta(days=2), 14), end=at(monday + timedelta(days=2), 15),
                  rrule="FREQ=WEEKLY;COUNT=3")
    ids = series["occurrence_ids"]
    second_week = monday + timedelta(weeks=1)
    errors: list[str] = []
    page = await new_page(browser, service.base, errors)
    try:
        await log_in(page, f"/calendar?view=week&date={second_week.isoformat()}", BOOKER)
        await page.wait_for_selector(f".cal-event[data-id='{ids[1]}']")
        await page.click(f".cal-event[data-id='{ids[1]}']")
        await page.wait_for_selector("#cal-form-dialog[open]")
        assert await page.input_value("#cal-title") == "Giao ban khối nội chính"
        assert "lịch định kỳ" in (await page.text_content(".cal-series-note") or "")
        await check_state(page, "unchanged")
        await page.fill("#cal-title", "Giao ban khối nội chính (dời giờ)")
        await page.fill("#cal-start", "15:00")
        await page.fill("#cal-end", "16:30")
        await check_state(page, "ok")
        await shot(page, "cal-09-form-edit")
        await page.click("#cal-save")
        await page.wait_for_selector("#cal-scope-dialog[open]")
        await shot(page, "cal-10-scope-question", phone=True)
        await page.click("#cal-scope-this")
        await page.wait_for_selector("#cal-form-dialog:not([open])", state="attached")
        moved = [conference(service, cid) for cid in ids]
        day2 = monday + timedelta(days=2)
        assert [(c["title"], c["start"], c["end"]) for c in moved] == [
            ("Giao ban khối nội chính", at(day2, 14), at(day2, 15)),
            ("Giao ban khối nội chính (dời giờ)", at(day2 + timedelta(weeks=1), 15),
             at(day2 + timedelta(weeks=1), 16, 30)),
            ("Giao ban khối nội chính", at(day2 + timedelta(weeks=2), 14),
             at(day2 + timedelta(weeks=2), 15)),
        ]

        # Cancel the third: a confirmation that wants the reason.
        third_week = monday + timedelta(weeks=2)
        await open_week(page, third_week)
        await page.click(f".cal-event[data-id='{ids[2]}']")
        await page.wait_for_selector("#cal-form-dialog[open]")
        await page.click("#cal-cancel-conference")
        await page.wait_for_selector("#cal-cancel-dialog[open]")
        await page.click("#cal-cancel-confirm")
        assert await page.is_visible("#cal-cancel-reason-error")
        await shot(page, "cal-11-cancel-needs-reason", phone=True)
        reason = "Trùng lịch làm việc với đoàn công tác của Trung ương"
        await page.fill("#cal-cancel-reason", reason)
        await page.click("#cal-cancel-confirm")
        await page.wait_for_selector("#cal-form-dialog:not([open])", state="attached")
        cancelled = conference(service, ids[2])
        assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == reason
        assert conference(service, ids[1])["status"] == "scheduled"
        status, audit = service.request("GET", "/api/v1/audit?target_type=conference")
        assert status == 200
        assert any(e["action"] == "conference.cancel" and e["after"]["cancel_reason"] == reason
                   for e in audit["events"])
        # The calendar shows it cancelled, and its reason.
        await page.wait_for_selector(f".cal-event[data-id='{ids[2]}'].cal-st-cancelled")
        await page.click(f".cal-event[data-id='{ids[2]}']")
        await page.wait_for_selector("#cal-form-dialog[open]")
        assert reason in (await page.text_content(".cal-reason-note") or "")
        assert await page.is_hidden("#cal-save")
        assert await page.is_disabled("#cal-title")
        await shot(page, "cal-12-cancelled", phone=True)
        await page.click("#cal-close")
    finally:
        await page.context.close()
    assert errors == []


async def test_booker_extends_a_running_conference(service: Service, browser: Any) -> None:
    # Starts in two minutes with ten of setup: the scheduler opens its room at once.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2)
    running = book(service, title="Họp trực tuyến khẩn", chair="UBND-TINH",
                   participants=["UBND-TINH", "HUYEN-MUONG-LAT"], start=start.isoformat(),
                   end=(start + timedelta(minutes=30)).isoformat(), setup_minutes=10)
    errors: list[str] = []
    page = await new_page(browser, service.base, errors)
    try:
        await log_in(page, "/calendar?view=day", BOOKER)
        await page.wait_for_selector(f".cal-event[data-id='{running['id']}'].cal-st-open",
                                     timeout=20000)  # the event stream refreshes the view
        await page.click(f".cal-event[data-id='{running['id']}']")
        await page.wait_for_selector("#cal-extend-button")
        assert await page.is_disabled("#cal-date") and await page.is_disabled("#cal-chair")
        await page.select_option("#cal-extend-minutes", "30")
        await shot(page, "cal-13-running")
        await page.click("#cal-extend-button")
        await page.wait_for_selector(".toast:not([hidden])")
        new_end = (start + timedelta(minutes=60)).astimezone(ZONE)
        assert conference(service, running["id"])["end"] == new_end.isoformat()
        assert await page.input_value("#cal-end") == new_end.strftime("%H:%M")
        await page.keyboard.press("Escape")
    finally:
        await page.context.close()
    assert errors == []


async def test_it_staff_read_the_calendar_without_booking(service: Service, browser: Any) -> None:
    monday = monday_in(3)
    seen = book(service, title="Hội nghị sơ kết quý", chair="UBND-TINH",
                participants=["UBND-TINH", "SO-TTTT"], start=at(monday, 10, 30),
                end=at(monday, 11, 30))
    errors: list[str] = []
    page = await new_page(browser, service.base, errors)
    try:
        await log_in(page, f"/calendar?view=list&date={monday.isoformat()}", IT)
        await page.wait_for_selector(f".cal-list-row[data-id='{seen['id']}']")
        assert await page.is_hidden("#cal-new")
        assert await page.is_visible(".cal-read-only")
        await page.click(f".cal-list-row[data-id='{seen['id']}'] .cal-list-open")
        await page.wait_for_selector("#cal-form-dialog[open]")
        assert await page.is_hidden("#cal-save") and await page.is_hidden("#cal-cancel-conference")
        assert await page.is_disabled("#cal-title")
        # English, kept across pages.
        await page.keyboard.press("Escape")
        await page.click("#lang")
        assert await page.text_content("#cal-view-week") == "Week"
        await shot(page, "cal-14-it-read-only-english")
        await page.click("#lang")
    finally:
        await page.context.close()
    assert errors == []


def small_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` (ASCII), with a correct cross-reference table."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


async def test_booker_attaches_a_pdf_from_the_form(service: Service, browser: Any) -> None:
    monday = monday_in(4)
    target = book(service, title="Hội nghị triển khai kế hoạch năm", chair="UBND-TINH",
                  participants=["UBND-TINH", "HUYEN-NGA-SON"], start=at(monday, 14),
                  end=at(monday, 16))
    errors: list[str] = []
    page = await new_page(browser, service.base, errors)
    try:
        await log_in(page, f"/calendar?view=week&date={monday.isoformat()}", BOOKER)
        await page.click(f".cal-event[data-id='{target['id']}']")
        await page.wait_for_selector("#cal-form-dialog[open]")
        await page.set_input_files("#cal-files", files=[{
            "name": "ke-hoach-2027.pdf", "mimeType": "application/pdf",
            "buffer": small_pdf("Ke hoach phat trien kinh te xa hoi nam 2027")}])
        assert await page.text_content("#cal-files-chosen") == "ke-hoach-2027.pdf"
        await shot(page, "cal-15-document-chosen")
        await page.click("#cal-save")
        await page.wait_for_selector("#cal-form-dialog:not([open])", state="attached")
        status, body = service.request("GET", f"/api/v1/conferences/{target['id']}/documents")
        assert status == 200, body
        assert [d["filename"] for d in body["documents"]] == ["ke-hoach-2027.pdf"]
        # Opened again, the form lists it.
        await page.click(f".cal-event[data-id='{target['id']}']")
        await page.wait_for_selector("#cal-docs li")
        listed_docs = await page.locator("#cal-docs a").all_text_contents()
        assert listed_docs == ["ke-hoach-2027"]  # its title: the name without the extension
        await shot(page, "cal-16-document-attached")
    finally:
        await page.context.close()
    assert errors == []
