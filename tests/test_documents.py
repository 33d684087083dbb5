"""Meeting documents through the API: attach, list, download, find; every bad upload
refused with nothing stored; only those entitled to the conference see a document.

Runs on SQLite and, in the PostgreSQL pass, on PostgreSQL: the search is each engine's
own full-text search (FTS5, tsvector)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, text

from documents.api import DOCUMENT_READERS
from documents.filenames import checked_filename
from documents.folding import fold, terms
from documents.refusals import DocumentRefused
from tests import document_files as files
from tests.conftest import Client
from tests.support import ADMIN_PASSWORD
from tests.test_booking import book
from vcbridge.core.app_keys import DATABASE
from vcbridge.core.db.models import AuditEvent, Document, DocumentChunk
from vcbridge.core.settings import Settings

H = dict[str, str]
PDF_TEXT = ("Báo cáo tình hình đường giao thông nông thôn huyện Nga Sơn quý IV.",
            "Đề nghị các xã hoàn thành kế hoạch đầu tư công trước ngày 31/12.")
# Small, so that a body past it is cheap to send; larger than max_body_bytes (256 KiB),
# so that the upload route shows it takes more than the other routes do.
LIMIT = 2 * 1024 * 1024


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path,
                    admin_password=ADMIN_PASSWORD, password_time_cost=1,
                    password_memory_kib=64, scheduler_enabled=False,
                    document_max_bytes=LIMIT)


@pytest.fixture
def upload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the service puts received files in this test (to see none is left)."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


async def upload(client: Client, headers: H, conference: int, data: bytes,
                 filename: str = "bao-cao.pdf", title: str | None = None,
                 status: int = 201, query: str = "") -> Any:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    if title is not None:
        form.add_field("title", title)
    response = await client.post(f"/api/v1/conferences/{conference}/documents{query}",
                                 data=form, headers=headers)
    body = await response.json()
    assert response.status == status, body
    return body


async def found(client: Client, headers: H, q: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/documents", params={"q": q}, headers=headers)
    body = await response.json()
    assert response.status == 200, body
    return list(body["documents"])


@pytest.fixture
async def operators(make_user: Callable[..., Awaitable[H]]) -> dict[str, H]:
    """An operator of a participant (Nga Sơn) and of an endpoint not taking part."""
    return {"nga_son": await make_user("op-nga-son", "operator", "HUYEN-NGA-SON"),
            "outsider": await make_user("op-yen-dinh", "operator", "HUYEN-YEN-DINH")}


async def test_booker_attaches_a_pdf_that_a_participant_downloads(
    client: Client, booker: H, admin: H, operators: dict[str, H]
) -> None:
    conference = await book(client, booker)  # UBND-TINH, HUYEN-NGA-SON, HUYEN-MUONG-LAT
    data = files.pdf(*PDF_TEXT)
    created = await upload(client, booker, conference["id"], data, "Báo cáo quý IV.pdf",
                           title="Báo cáo giao thông")
    assert created == {
        "id": created["id"], "title": "Báo cáo giao thông", "filename": "Báo cáo quý IV.pdf",
        "media_type": "application/pdf", "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "conference_id": conference["id"],
        "series_id": None, "uploaded_at": "2026-11-27T10:00:00+07:00",
        "uploaded_by": "booker1",
    }
    operator = operators["nga_son"]
    listed = await client.get(f"/api/v1/conferences/{conference['id']}/documents",
                              headers=operator)
    assert (await listed.json()) == {"documents": [created]}
    one = await client.get(f"/api/v1/documents/{created['id']}", headers=operator)
    assert await one.json() == created
    download = await client.get(f"/api/v1/documents/{created['id']}/content", headers=operator)
    assert download.status == 200
    assert await download.read() == data
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"Bao cao quy IV.pdf\"; "
        "filename*=UTF-8''B%C3%A1o%20c%C3%A1o%20qu%C3%BD%20IV.pdf")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["ETag"] == f'"{created["sha256"]}"'
    audit = await client.get("/api/v1/audit", params={"action": "document.upload"},
                             headers=admin)
    [event] = (await audit.json())["events"]
    assert (event["actor"], event["target_id"], event["after"]) == (
        "booker1", str(created["id"]), created)


async def test_the_type_is_told_by_the_content_not_the_name(client: Client, booker: H) -> None:
    conference = await book(client, booker)
    cases = [
        (files.docx("Kế hoạch", "Đường liên xã"), "ke-hoach.pdf",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (files.xlsx("Ngân sách", "Thọ Xuân"), "ngan-sach",
         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (files.pptx("Giao ban tuần", "Tình hình thiên tai"), "trinh-chieu.docx",
         "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
        (files.image("PNG"), "anh.jpg", "image/png"),
        (files.image("JPEG"), "anh.png", "image/jpeg"),
    ]
    for data, name, media_type in cases:
        created = await upload(client, booker, conference["id"], data, name)
        assert created["media_type"] == media_type, name
        assert created["filename"] == name
        assert created["title"] == name.rsplit(".", 1)[0]


def refused(body: dict[str, Any], reason: str) -> None:
    error = body["error"]
    assert error["code"] == "invalid", body
    assert error["details"]["reason"] == reason, body
    assert error["message"] == error["details"]["problem"]


async def test_each_bad_upload_is_refused_and_nothing_is_stored(
    client: Client, booker: H, admin: H, operators: dict[str, H], upload_dir: Path
) -> None:
    conference = await book(client, booker)
    cid = conference["id"]
    good = files.pdf(*PDF_TEXT)

    # Over the limit: refused by its declared length before reading it...
    body = await upload(client, booker, cid, good + bytes(LIMIT), status=413)
    assert body["error"] == {"code": "too_large", "message": f"the document is larger than "
                             f"{LIMIT} bytes", "details": {"limit_bytes": LIMIT}}
    # ...and, sent in chunks without a length, the moment it passes the limit.
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield good
        while sent < 4 * LIMIT:
            sent += 65536
            yield bytes(65536)

    with aiohttp.MultipartWriter("form-data") as writer:
        writer.append(endless()).set_content_disposition(
            "form-data", name="file", filename="lon.pdf")
    response = await client.post(f"/api/v1/conferences/{cid}/documents", data=writer,
                                 headers=booker)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"

    refused(await upload(client, booker, cid, b"", status=422), "empty")
    body = await upload(client, booker, cid, "Biên bản họp".encode(), "bien-ban.pdf",
                        status=415)
    assert body["error"]["code"] == "unsupported_media_type"
    assert body["error"]["details"] == {"accepted": ["PDF", "DOCX", "XLSX", "PPTX", "PNG",
                                                     "JPEG"]}
    body = await upload(client, booker, cid, files.plain_zip(), "ho-so.docx", status=415)
    assert "ZIP archive" in body["error"]["message"]
    refused(await upload(client, booker, cid, good[: len(good) // 2], status=422), "malformed")
    refused(await upload(client, booker, cid, files.pdf("Mật", password="mat-khau"),
                         status=422), "encrypted")
    refused(await upload(client, booker, cid, files.pdf_bomb(), status=422), "zip_bomb")
    refused(await upload(client, booker, cid, files.docx_bomb(), "ke-hoach.docx",
                         status=422), "zip_bomb")
    refused(await upload(client, booker, cid, files.docx_overlapping(), "ke-hoach.docx",
                         status=422), "zip_bomb")
    for name in ("../../etc/passwd.pdf", "C:\\Users\\vanthu\\bao-cao.pdf", "/var/x.pdf",
                 "bao-cao\u202efdp.exe", "..", "   "):
        refused(await upload(client, booker, cid, good, name, status=422), "filename")
    # Control characters: as a browser sends them (raw; CR and LF escaped as %0D, %0A).
    for raw in (b"bao\x07cao.pdf", b"bao\x1bcao.pdf", "biên%0Abản.pdf".encode(),
                b"..%2F..%2Fx.pdf"):
        boundary = "vcbridge-test-boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"").encode() + raw + (
                b"\"\r\nContent-Type: application/pdf\r\n\r\n") + good + (
                f"\r\n--{boundary}--\r\n").encode()
        response = await client.post(
            f"/api/v1/conferences/{cid}/documents", data=body, headers={
                **booker, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        refused(await response.json(), "filename")
    refused(await upload(client, booker, cid, good, title="x" * 201, status=422), "title")
    refused(await upload(client, booker, cid, good, title="Dòng 1\nDòng 2", status=422),
            "title")
    refused(await upload(client, booker, cid, good, query="?series=true", status=422),
            "series")

    form = aiohttp.FormData()
    form.add_field("tai_lieu", good, filename="bao-cao.pdf")
    response = await client.post(f"/api/v1/conferences/{cid}/documents", data=form,
                                 headers=booker)
    refused(await response.json(), "form")
    form = aiohttp.FormData({"title": "Không có tệp"}, default_to_multipart=True)
    response = await client.post(f"/api/v1/conferences/{cid}/documents", data=form,
                                 headers=booker)
    refused(await response.json(), "form")
    response = await client.post(f"/api/v1/conferences/{cid}/documents", json={"file": "x"},
                                 headers=booker)
    assert response.status == 415
    await upload(client, operators["nga_son"], cid, good, status=403)
    await upload(client, booker, 999_999, good, status=404)
    cancelled = await book(client, booker, start="2026-12-02T08:00:00+07:00",
                           end="2026-12-02T09:00:00+07:00")
    await client.delete(f"/api/v1/conferences/{cancelled['id']}", headers=booker)
    await upload(client, booker, cancelled["id"], good, status=409)

    # Nothing of any of them: no row, no content, no index entry, no audit, no file left.
    async with client.app[DATABASE].read() as session:
        for model in (Document, DocumentChunk):
            assert await session.scalar(select(func.count()).select_from(model)) == 0
        assert await session.scalar(text("SELECT count(*) FROM document_search")) == 0
        assert await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.target_type == "document")) == 0
    assert await asyncio.to_thread(lambda: list(upload_dir.iterdir())) == []
    assert await found(client, admin, "") == []


async def test_a_document_that_holds_the_reader_too_long_is_refused_and_the_service_goes_on(
    client: Client, booker: H
) -> None:
    conference = await book(client, booker)
    readers = client.app[DOCUMENT_READERS]
    await upload(client, booker, conference["id"], files.pdf("Khởi động"))  # a worker runs
    before = readers.pids()
    # Its one page takes pypdf seconds; the budget here is half a second.
    readers.budget_seconds = 0.5
    try:
        refused(await upload(client, booker, conference["id"], files.pdf_slow(),
                             status=422), "unreadable")
    finally:
        readers.budget_seconds = 30
    assert not set(before) & set(readers.pids())
    assert (await client.get("/healthz")).status == 200
    await upload(client, booker, conference["id"], files.pdf(*PDF_TEXT))  # a new worker


async def test_only_those_entitled_to_the_conference_see_its_documents(
    client: Client, booker: H, admin: H, operators: dict[str, H],
    make_user: Callable[..., Awaitable[H]],
) -> None:
    conference = await book(client, booker)
    created = await upload(client, booker, conference["id"], files.pdf(*PDF_TEXT),
                           title="Kế hoạch mật của huyện")
    did = created["id"]
    outsider = operators["outsider"]
    for path in (f"/api/v1/documents/{did}", f"/api/v1/documents/{did}/content",
                 f"/api/v1/conferences/{conference['id']}/documents",
                 "/api/v1/documents/999999"):
        response = await client.get(path, headers=outsider)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"
    # A search never names it: not by its title, not by its text, not among the newest.
    for q in ("ke hoach mat", "giao thong", ""):
        assert await found(client, outsider, q) == [], q
    for caller in (operators["nga_son"], admin, await make_user("it1", "it")):
        assert [d["id"] for d in await found(client, caller, "ke hoach mat")] == [did]
    # Only bookers and admins remove documents, and not what they cannot name.
    response = await client.delete(f"/api/v1/documents/{did}", headers=operators["nga_son"])
    assert response.status == 403
    response = await client.delete(f"/api/v1/documents/{did}", headers=booker)
    assert await response.json() == created
    for path in (f"/api/v1/documents/{did}", f"/api/v1/documents/{did}/content"):
        assert (await client.get(path, headers=admin)).status == 404
    assert await found(client, admin, "giao thong") == []
    audit = await client.get("/api/v1/audit", params={"action": "document.delete"},
                             headers=admin)
    [event] = (await audit.json())["events"]
    assert event["before"] == created and event["after"] is None


async def test_search_by_title_and_text_with_or_without_diacritics(
    client: Client, booker: H, operators: dict[str, H]
) -> None:
    conference = await book(client, booker)
    cid = conference["id"]
    pdf = await upload(client, booker, cid, files.pdf(*PDF_TEXT), title="Báo cáo quý IV")
    docx = await upload(client, booker, cid, files.docx("Kế hoạch đầu tư", "Cầu Hàm Rồng"),
                        "ke-hoach.docx", title="Kế hoạch năm 2027")
    xlsx = await upload(client, booker, cid, files.xlsx("Dự toán", "Trường mầm non Thọ Xuân"),
                        "du-toan.xlsx")
    pptx = await upload(client, booker, cid, files.pptx("Giao ban", "Phòng chống lũ lụt"),
                        "trinh-chieu.pptx")
    me = operators["nga_son"]

    async def ids(q: str) -> list[int]:
        return [d["id"] for d in await found(client, me, q)]

    # A word of the PDF's text, typed without diacritics, with them, in capitals, cut short.
    for q in ("duong giao thong", "Đường giao thông", "ĐƯỜNG GIAO", "giao th", "nga son"):
        assert await ids(q) == [pdf["id"]], q
    [hit] = await found(client, me, "nong thon nga son")
    assert "đường giao thông nông thôn huyện Nga Sơn" in hit["snippet"]
    assert hit["conference"] == {"id": cid, "title": conference["title"],
                                 "start": conference["start"]}
    assert {k: hit[k] for k in pdf} == pdf
    # Each word must be found; the title counts as much as the text.
    assert await ids("giao thong ha noi") == []
    assert await ids("quy iv") == [pdf["id"]]
    assert set(await ids("ke hoach")) == {pdf["id"], docx["id"]}  # PDF: "kế hoạch" in text
    assert (await ids("ke hoach"))[0] == docx["id"]  # ... but the DOCX has it in its title
    assert await ids("ham rong") == [docx["id"]]
    assert await ids("truong mam non tho xuan") == [xlsx["id"]]
    assert await ids("chong lu lut") == [pptx["id"]]
    # Nothing to search for: nothing found; no query at all: the newest first.
    assert await ids("!!! ???") == []
    assert await ids("") == [pptx["id"], xlsx["id"], docx["id"], pdf["id"]]
    response = await client.get("/api/v1/documents", params={"q": "a" * 201}, headers=me)
    assert response.status == 422


async def test_a_document_for_the_whole_series(
    client: Client, booker: H, make_user: Callable[..., Awaitable[H]]
) -> None:
    series = await book(client, booker, rrule="FREQ=WEEKLY;COUNT=3")
    first, second, third = series["occurrence_ids"]
    everyone = await upload(client, booker, first, files.pdf("Quy chế giao ban"),
                            query="?series=true")
    only_first = await upload(client, booker, first, files.pdf("Chương trình tuần 1"))
    assert everyone["series_id"] == series["series_id"]
    assert only_first["series_id"] is None

    async def listed(conference: int, headers: H) -> list[int]:
        response = await client.get(f"/api/v1/conferences/{conference}/documents",
                                    headers=headers)
        return [d["id"] for d in (await response.json())["documents"]]

    assert await listed(first, booker) == [everyone["id"], only_first["id"]]
    assert await listed(second, booker) == await listed(third, booker) == [everyone["id"]]
    # An endpoint invited to the third occurrence only sees the series' document there,
    # and a search shows it with that occurrence (not the first, which it may not see).
    patched = await client.patch(f"/api/v1/conferences/{third}", headers=booker, json={
        "participants": [*series["participants"], "HUYEN-HA-TRUNG"]})
    assert patched.status == 200, await patched.json()
    late = await make_user("op-ha-trung", "operator", "HUYEN-HA-TRUNG")
    assert await listed(third, late) == [everyone["id"]]
    assert (await client.get(f"/api/v1/conferences/{first}/documents",
                             headers=late)).status == 404
    [hit] = await found(client, late, "quy che")
    assert hit["conference"]["id"] == third
    assert await found(client, late, "chuong trinh") == []


async def test_only_the_upload_route_takes_a_large_body(client: Client, booker: H) -> None:
    conference = await book(client, booker)
    from PIL import Image

    noise = Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3))
    path = Path(tempfile.mkdtemp()) / "noise.png"
    await asyncio.to_thread(noise.save, path)
    data = path.read_bytes()
    assert len(data) > 1024 * 1024  # four times max_body_bytes
    created = await upload(client, booker, conference["id"], data, "anh-ve-tinh.png")
    download = await client.get(f"/api/v1/documents/{created['id']}/content", headers=booker)
    assert await download.read() == data
    response = await client.post("/api/v1/conferences", data=b" " * 300_000,
                                 headers={**booker, "Content-Type": "application/json"})
    assert response.status == 413


def test_folding_and_names() -> None:
    assert fold("Đường GIAO THÔNG huyện Nga Sơn") == "duong giao thong huyen nga son"
    assert terms("  Nga-Sơn, nga_son!  ĐƯỜNG ") == ["nga", "son", "duong"]
    assert checked_filename("Biên bản họp.pdf") == "Biên bản họp.pdf"
    with pytest.raises(DocumentRefused):
        checked_filename("a/b.pdf")
