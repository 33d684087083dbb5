"""The conference page (/conferences/{id}) end to end in a real headless Chromium: before,
during and after a conference that two aiortc endpoint agents attend.

A real `vcbridge serve` process (scheduler, bridge on loopback), Debian's Chromium
driven by Playwright's Python package, the unattended endpoint agent for the chair
and for a district. During the meeting the roll call on the page follows the event
stream; a booker gives the floor from a control console; after the end the page
shows the record (both attendances, the floor log) and the PDF "biên bản" downloads
and reads back, through a PDF text extractor, with its Vietnamese title.

Screenshots of every state go to test-artifacts/browser/conference/ (1366x768 and a
phone's 390x844; a folder of their own, which the other browser modules' clean-up of
browser/*.png leaves alone), with the PDF and a picture of its first page. Skips without
Chromium on a developer's machine, fails in CI (VCBRIDGE_REQUIRE_ALL=1)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pypdf import PdfReader

from bridge.agent.endpoint_agent import EndpointAgent
from bridge.ice_policy import restrict_host_addresses
from harness.chromium import chromium_missing, launch, log_in, new_page, password_of
from harness.service_process import Service, service_env
from tests.support import eventually, loopback_agent, skip_or_fail
from tests.test_browser_pages import ARTIFACTS, LOOPBACK, endpoint_token

CHAIR, NGA, MUONG, YEN = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-MUONG-LAT", "HUYEN-YEN-DINH"
TITLE = 'Giao ban trực tuyến tháng 11 <img src=x onerror="alert(1)"> & <b>khẩn</b>'
USERS = {"op-nga-son": ("operator", NGA), "op-so-tttt": ("operator", "SO-TTTT"),
         "vp-dat-lich": ("booker", None)}
PHONE = {"width": 390, "height": 844}
SHOTS = ARTIFACTS / "browser" / "conference"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One `vcbridge serve` for the module: bridge on loopback, quick redial (an absent
    site is absent within seconds), the users the test logs in as."""
    missing = chromium_missing()
    if missing:
        skip_or_fail(missing)
    restrict_host_addresses([LOOPBACK])
    for old in SHOTS.glob("*.png"):  # this run's screenshots only
        old.unlink()
    started = Service(tmp_path_factory.mktemp("conference-page"), service_env(
        VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK, VCBRIDGE_INVITE_TIMEOUT_SECONDS="2",
        VCBRIDGE_REDIAL_BACKOFF_SECONDS="1"))
    try:
        started.wait_healthy(timeout=60)
        started.login()
        for username, (role, endpoint) in USERS.items():
            started.add_user(username, role, password_of(username), endpoint)
        yield started
    finally:
        started.stop()


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    return await eventually(check, what, timeout, interval=0.2)


async def shot(page: Any, name: str, *, full: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


async def phone_shot(page: Any, name: str) -> None:
    """The same page on a phone's screen, then back to the office screen."""
    size = page.viewport_size
    await page.set_viewport_size(PHONE)
    await asyncio.sleep(0.2)
    await shot(page, f"{name}-phone")
    await page.set_viewport_size(size)


def status_of(service: Service, cid: int) -> str:
    status, body = service.request("GET", f"/api/v1/conferences/{cid}")
    assert status == 200, body
    return str(body["status"])


def as_endpoint(service: Service, code: str, method: str, path: str) -> tuple[int, Any]:
    keep, service.token = service.token, endpoint_token(service, code)
    try:
        return service.request(method, path)
    finally:
        service.token = keep


@contextlib.asynccontextmanager
async def control_console(service: Service, cid: int, username: str
                          ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """The booker `username` at the chair console in control mode (signaling only)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.base}/api/v1/auth/login", json={
                "username": username, "password": password_of(username)}) as response:
            token = (await response.json())["token"]
        async with http.ws_connect(
                f"{service.base}/api/v1/conferences/{cid}/signal?role=control",
                headers={"Authorization": f"Bearer {token}"}) as ws:
            assert (await ws.receive_json(timeout=10))["role"] == "control"
            yield ws


async def wait_state(ws: aiohttp.ClientWebSocketResponse,
                     predicate: Callable[[dict[str, Any]], bool]) -> None:
    while True:
        message = await ws.receive_json(timeout=15)
        if message.get("type") == "state" and predicate(message):
            return


def pdf_first_page_png(pdf: Path) -> None:
    """The PDF's first page as a picture beside the screenshots (Debian's poppler-utils)."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        skip_or_fail("pdftoppm is not installed (apt-get install poppler-utils)")
        return
    subprocess.run([pdftoppm, "-png", "-r", "70", "-f", "1", "-l", "1", str(pdf),
                    str(SHOTS / "record-pdf")], check=True, timeout=60)


async def test_the_conference_page_before_during_and_after(service: Service) -> None:
    from playwright.async_api import async_playwright

    status, conference = service.request("POST", "/api/v1/conferences", {
        "title": TITLE, "chair": CHAIR, "participants": [CHAIR, NGA, MUONG, YEN],
        "agenda": "1. Tình hình kinh tế - xã hội tháng 11\n2. Công tác phòng, chống thiên tai",
        "start": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
        "end": (datetime.now(UTC) + timedelta(minutes=90)).isoformat(), "setup_minutes": 0})
    assert status == 201, conference
    cid = conference["id"]
    path = f"/conferences/{cid}"
    agents = [EndpointAgent(loopback_agent(service.base, code, endpoint_token(service, code),
                                           summary_seconds=3600)) for code in (CHAIR, NGA)]
    tasks = [asyncio.create_task(agent.run()) for agent in agents]
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            # -- before: the district's operator sees the conference, the join button.
            operator = await new_page(browser, service.base, errors)
            await log_in(operator, path, "op-nga-son")
            await operator.wait_for_selector("#conf-title")
            assert await operator.text_content("#conf-title") == TITLE
            assert await operator.locator("#conf-title *").count() == 0  # no markup made
            assert await operator.text_content("#conf-status") == "Sắp diễn ra"
            assert await operator.locator("#join-link").is_visible()
            assert await operator.locator("#chair-link").count() == 0  # not the chair's
            assert "Phòng họp chưa mở" in (await operator.text_content("#rollcall-summary")
                                           or "")
            await operator.wait_for_selector(f'#rollcall-table tr[data-code="{NGA}"]')
            await operator.wait_for_selector("#conf-documents p")
            await shot(operator, "01-before-operator", full=False)
            await phone_shot(operator, "01-before-operator")

            booker = await new_page(browser, service.base, errors)
            await log_in(booker, path, "vp-dat-lich")
            await booker.wait_for_selector("#chair-link")
            assert await booker.get_attribute("#chair-link", "href") == f"/chair/{cid}"
            assert await booker.locator("#join-link").count() == 0  # no endpoint of its own
            await shot(booker, "02-before-booker", full=False)

            # Another endpoint's operator is told there is no such conference.
            stranger = await new_page(browser, service.base, errors)
            await log_in(stranger, path, "op-so-tttt")
            await stranger.wait_for_selector("#conf-missing")
            await shot(stranger, "03-not-entitled", full=False)
            await stranger.context.close()

            # -- during: the room opens now; the agents join; the roll call follows live.
            start = datetime.now(UTC) + timedelta(seconds=2)
            status, body = service.request("PATCH", f"/api/v1/conferences/{cid}", {
                "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()})
            assert status == 200, body
            for page in (booker, operator):
                await page.wait_for_selector("#conf-status [data-status=live]", timeout=30000)
            await booker.wait_for_selector(f'#rollcall-table tr[data-code="{CHAIR}"]'
                                           '[data-state=joined]', timeout=30000)
            await booker.wait_for_selector(f'#rollcall-table tr[data-code="{NGA}"]'
                                           '[data-state=joined]', timeout=30000)
            # The district's own page sees itself join (its events only, at once).
            await operator.wait_for_selector(f'#rollcall-table tr[data-code="{NGA}"]'
                                             '[data-state=joined]', timeout=30000)
            status, _ = as_endpoint(service, YEN, "POST", f"/api/v1/conferences/{cid}/decline")
            assert status == 200
            await booker.wait_for_selector(f'#rollcall-table tr[data-code="{YEN}"]'
                                           '[data-state=declined]', timeout=10000)
            assert (await booker.text_content("#rollcall-summary") or "").startswith(
                "2/4 điểm cầu đã vào phòng họp")
            await shot(booker, "04-during-booker", full=False)
            await shot(operator, "05-during-operator", full=False)

            # A booker gives the floor to Nga Son from the chair console, then takes it back.
            async with control_console(service, cid, "vp-dat-lich") as ws:
                await ws.send_json({"type": "floor.grant", "endpoint": NGA})
                await wait_state(ws, lambda s: s.get("holder") == NGA)
                await asyncio.sleep(1.5)
                await ws.send_json({"type": "floor.revoke"})
                await wait_state(ws, lambda s: s.get("holder") is None)
            # The booker extends the meeting, then ends it early (a shorter end).
            status, body = service.request("POST", f"/api/v1/conferences/{cid}/extend",
                                           {"minutes": 15})
            assert status == 200, body
            status, body = service.request("PATCH", f"/api/v1/conferences/{cid}", {
                "end": (datetime.now(UTC) + timedelta(seconds=3)).isoformat()})
            assert status == 200, body

            # -- after: the page turns into the record by itself.
            await booker.wait_for_selector("#conf-status [data-status=ended]", timeout=30000)
            for code in (CHAIR, NGA):
                await booker.wait_for_selector(
                    f'#record-attendance tr[data-code="{code}"][data-attended=true]',
                    timeout=15000)
            for code, absences in ((MUONG, ("no_answer", "absent")), (YEN, ("declined",))):
                row = booker.locator(f'#record-attendance tr[data-code="{code}"]')
                assert await row.get_attribute("data-absence") in absences, code
            floor = booker.locator(f'#record-floor tr[data-code="{NGA}"]')
            assert await floor.count() == 1
            assert await floor.locator(".granted-by").text_content() == (
                "vp-dat-lich (Cán bộ đặt lịch)")
            assert "chủ tọa thu hồi" in (await floor.text_content() or "")
            actions = await booker.eval_on_selector_all(
                "#record-changes tr[data-action]", "rows => rows.map(r => r.dataset.action)")
            assert actions == ["created", "edited", "extended", "edited"]
            assert await booker.text_content("#stat-attended .conf-stat-value") == "2/4 điểm cầu"
            assert await booker.locator("#rollcall").is_hidden()
            await shot(booker, "06-after-record")
            await phone_shot(booker, "06-after-record")

            # The PDF downloads from the page and reads back with its Vietnamese title.
            async with booker.expect_download() as download_info:
                await booker.click("#pdf-link")
            download = await download_info.value
            assert download.suggested_filename == f"bien-ban-hoi-nghi-{cid}.pdf"
            pdf = SHOTS / "record.pdf"
            await download.save_as(str(pdf))
            reader = PdfReader(str(pdf))
            text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
            assert "BIÊN BẢN HỘI NGHỊ TRUYỀN HÌNH TRỰC TUYẾN" in text
            assert TITLE in text
            assert "UBND huyện Nga Sơn" in text and "vp-dat-lich" in text
            pdf_first_page_png(pdf)

            # The district's operator sees the record too, without the recordings list.
            await operator.wait_for_selector("#record-attendance", timeout=15000)
            assert await operator.locator("#join-link").count() == 0
            assert "Bản ghi chỉ dành" in (await operator.text_content("#record") or "")
            await operator.click("#lang")
            await operator.wait_for_selector("html[lang=en]")
            assert await operator.text_content("#conf-status") == "Ended"
            await shot(operator, "07-after-operator-english", full=False)
        finally:
            await browser.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert status_of(service, cid) == "ended"
    assert errors == []
