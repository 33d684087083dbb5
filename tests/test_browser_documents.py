"""Meeting documents in a real Chromium: an operator finds, reads and downloads the
documents of their endpoint's conferences, and nothing of another's.

A real `vcbridge serve` (its scheduler opens the room; its bridge on loopback), Debian's
`/usr/bin/chromium` driven by Playwright's Python package. The documents are real: PDFs
made with fpdf2 in a Vietnamese font, uploaded through the API as a booker would.
Screenshots of every state go to test-artifacts/browser/documents/ (at 1366x768, and
the search page also at a phone's 390x844)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.chromium import chromium_missing, launch, log_in, new_page, password_of
from harness.service_process import Service, service_env
from tests import document_files as files
from tests.support import skip_or_fail
from tests.test_browser_pages import ARTIFACTS, LOOPBACK

SHOTS = ARTIFACTS / "browser" / "documents"
SITE, OTHER = "HUYEN-NGA-SON", "HUYEN-YEN-DINH"
OPERATOR = "op-docs-nga-son"
PDF_TEXT = ("Báo cáo tiến độ xây dựng kè chống sạt lở bờ sông Lèn, huyện Nga Sơn.",
            "Tuyến đường giao thông nông thôn xã Nga Thạch đã hoàn thành 85%.")
HOSTILE_TITLE = '<img src=x onerror="alert(1)"> Phụ lục & "ghi chú"'


def book(service: Service, title: str, participants: list[str], start: datetime,
         setup: int = 0) -> dict[str, Any]:
    status, body = service.request("POST", "/api/v1/conferences", {
        "title": title, "chair": participants[0], "participants": participants,
        "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
        "setup_minutes": setup})
    assert status == 201, body
    return dict(body)


def attach(service: Service, conference: int, data: bytes, filename: str,
           title: str | None = None) -> dict[str, Any]:
    status, body = files.upload(service, conference, data, filename, title)
    assert status == 201, body
    return dict(body)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One service for the module: an operator of Nga Sơn; a conference of Nga Sơn whose
    room is open now, with a PDF, a Word file and a hostile title; a conference of Yên
    Định alone, with a PDF of its own."""
    missing = chromium_missing()
    if missing:
        skip_or_fail(missing)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    service = Service(tmp_path_factory.mktemp("documents-service"), service_env(
        VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK))
    try:
        service.wait_healthy(timeout=60)
        service.login()
        for username, code in ((OPERATOR, SITE), ("op-docs-yen-dinh", OTHER)):
            status, body = service.request("POST", "/api/v1/users", {
                "username": username, "password": password_of(username), "role": "operator",
                "endpoint": code})
            assert status == 201, body
        now = datetime.now(UTC).replace(microsecond=0)
        # Setup from 10 minutes ago: the scheduler opens its room at once.
        ours = book(service, "Giao ban phòng chống thiên tai tháng 12", ["UBND-TINH", SITE],
                    now + timedelta(minutes=5), setup=15)
        theirs = book(service, "Họp riêng huyện Yên Định", ["SO-TTTT", OTHER],
                      now + timedelta(days=1))
        pdf = files.pdf(*PDF_TEXT)
        world = {
            "service": service, "ours": ours, "theirs": theirs, "pdf_bytes": pdf,
            "pdf": attach(service, ours["id"], pdf, "Báo cáo kè sông Lèn.pdf",
                          "Báo cáo kè chống sạt lở sông Lèn"),
            "docx": attach(service, ours["id"], files.docx("Kế hoạch ứng phó bão số 9",
                                                           "Sơ tán dân vùng trũng"),
                           "ke-hoach-ung-pho.docx"),
            "hostile": attach(service, ours["id"], files.image("PNG"), "phu-luc.png",
                              HOSTILE_TITLE),
            "secret": attach(service, theirs["id"],
                             files.pdf("Kế hoạch riêng: nâng cấp đường giao thông Yên Định."),
                             "ke-hoach-rieng.pdf", "Kế hoạch riêng của Yên Định"),
        }
        yield world
    finally:
        service.stop()


async def shot(page: Any, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def results(page: Any) -> list[str]:
    titles: list[str] = await page.eval_on_selector_all(
        "#doc-results .doc-result .doc-title", "nodes => nodes.map(n => n.textContent)")
    return titles


async def test_an_operator_finds_and_downloads_only_their_conferences_documents(
    world: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    service: Service = world["service"]
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            page = await new_page(browser, service.base, errors)
            await log_in(page, "/documents", OPERATOR)
            await page.wait_for_selector("#doc-results .doc-result")
            # The newest documents: the three of Nga Sơn's conference, not Yên Định's.
            assert sorted(await results(page)) == sorted([
                world["pdf"]["title"], world["docx"]["title"], HOSTILE_TITLE])
            assert "Yên Định" not in await page.inner_text("#doc-results")
            # A hostile title is text: no image element was made from it.
            assert await page.locator("#doc-results img").count() == 0
            await shot(page, "01-newest-operator")

            # A word of the PDF's text, typed without diacritics.
            await page.fill("#doc-search", "duong giao thong nong thon")
            await page.wait_for_function(
                "() => document.querySelector('#doc-summary').textContent.includes('duong')")
            assert await results(page) == [world["pdf"]["title"]]
            snippet = await page.inner_text("#doc-results .doc-snippet")
            assert "đường giao thông nông thôn" in snippet.lower()
            conference = await page.inner_text("#doc-results .doc-conference a")
            assert conference == world["ours"]["title"]
            assert "?q=duong+giao+thong+nong+thon" in page.url
            await shot(page, "02-found-without-diacritics")

            # The download is the file that was uploaded, and its text reads back.
            async with page.expect_download() as waiting:
                await page.click(f'#doc-results a[data-document="{world["pdf"]["id"]}"]')
            download = await waiting.value
            assert download.suggested_filename == "Báo cáo kè sông Lèn.pdf"
            saved = tmp_path / "downloaded.pdf"
            await download.save_as(str(saved))
            assert saved.read_bytes() == world["pdf_bytes"]
            from pypdf import PdfReader

            text = PdfReader(io.BytesIO(saved.read_bytes())).pages[0].extract_text()
            assert "kè chống sạt lở bờ sông Lèn" in text

            # Yên Định's document: found by nothing, fetched by no id.
            await page.fill("#doc-search", "ke hoach rieng Yen Dinh")
            await page.wait_for_selector("#doc-results .doc-empty")
            await shot(page, "03-nothing-of-another-endpoint")
            secret = world["secret"]["id"]
            answers = await page.evaluate("""async ([id, conference]) => {
                const out = [];
                for (const path of [`/api/v1/documents/${id}`, `/api/v1/documents/${id}/content`,
                                    `/api/v1/conferences/${conference}/documents`]) {
                    const response = await fetch(path, { credentials: 'same-origin' });
                    out.push([response.status, await response.text()]);
                }
                return out;
            }""", [secret, world["theirs"]["id"]])
            for status, body in answers:
                assert status == 404, body
                assert "not_found" in body and "Yên Định" not in body and "%PDF" not in body

            # English, and a phone's screen.
            await page.fill("#doc-search", "bao cao ke song len")
            await page.wait_for_function(
                "() => document.querySelectorAll('#doc-results .doc-result').length === 1")
            await page.click("#lang")
            await page.wait_for_selector("html[lang=en]")
            summary = await page.inner_text("#doc-summary")
            assert summary == "1 document found for “bao cao ke song len”"
            await shot(page, "04-english")
            await page.click("#lang")
            await page.set_viewport_size({"width": 390, "height": 844})
            await shot(page, "05-phone")
        finally:
            await browser.close()
    assert not errors, errors


async def test_the_join_page_shows_the_documents_in_the_lobby_and_in_the_room(
    world: dict[str, Any]
) -> None:
    from playwright.async_api import async_playwright

    service: Service = world["service"]
    titles = {world["pdf"]["title"], world["docx"]["title"], HOSTILE_TITLE}
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            page = await new_page(browser, service.base, errors)
            await log_in(page, "/join", OPERATOR)
            await page.wait_for_selector("#join-button:not([disabled])")
            panel = await page.wait_for_selector("#lobby .doc-panel .doc-item")
            assert panel is not None
            lobby = set(await page.eval_on_selector_all(
                "#lobby .doc-panel .doc-title", "nodes => nodes.map(n => n.textContent)"))
            assert lobby == titles
            await shot(page, "06-join-lobby")

            await page.click("#join-button")
            await page.wait_for_selector("#call-status[data-mode=call]", timeout=30000)
            await page.click("#documents-button")
            await page.wait_for_selector("#documents-drawer:not([hidden]) .doc-item")
            room = set(await page.eval_on_selector_all(
                "#documents-drawer .doc-title", "nodes => nodes.map(n => n.textContent)"))
            assert room == titles
            link = await page.get_attribute(
                f'#documents-drawer a[data-document="{world["pdf"]["id"]}"]', "href")
            assert link == f"/api/v1/documents/{world['pdf']['id']}/content"
            await shot(page, "07-join-room-documents")
            await page.click("#leave-button")
        finally:
            await browser.close()
    assert not errors, errors
