"""Receiving an upload: the multipart form read as a stream, the size limit kept while
reading.

The application's `client_max_size` (`max_body_bytes`, 256 KiB) bounds what
`request.read()` and `request.post()` take; this route never calls them. It
reads the form part by part with aiohttp's multipart reader and the file in
pieces straight to a temporary file of the service's own naming (the
client's name is never a path), hashing on the way, and stops with 413 the
moment the file passes `document_max_bytes`; a declared `Content-Length`
beyond it is refused before anything is read. So only this route accepts a
large body, and never more than its limit."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError, InvalidHeader

from documents.file_types import ACCEPTED_NAMES, HEAD_BYTES
from documents.filenames import checked_filename
from documents.refusals import DocumentRefused, RefusalReason
from vcbridge.core.http.errors import ApiError

# What the form may carry besides the file: its boundaries, headers and the title.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_TITLE_BYTES = 4096
MAX_PARTS = 8
_READ_BYTES = 256 * 1024
_WRITE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ReceivedFile:
    """The uploaded file, on disk under a name of our own."""

    path: Path
    filename: str
    size: int
    sha256: str
    head: bytes  # the first bytes, to tell the type by


@dataclass(frozen=True)
class UploadForm:
    """The form: the file, and the title if one was given."""

    file: ReceivedFile
    title: str | None


def too_large(limit: int) -> ApiError:
    """413 naming the limit."""
    return ApiError(413, "too_large", f"the document is larger than {limit} bytes",
                    {"limit_bytes": limit})


async def read_form(request: web.Request, max_bytes: int) -> UploadForm:
    """The form of an upload; ApiError (413, 415) or DocumentRefused (422) if refused.
    The caller owns the received file and must delete it."""
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the document as "
                       "multipart/form-data with a `file` part",
                       {"accepted": list(ACCEPTED_NAMES)})
    length = request.content_length
    if length is not None and length > max_bytes + FORM_OVERHEAD_BYTES:
        raise too_large(max_bytes)
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError):
        raise ApiError(400, "bad_request", "malformed multipart/form-data body") from None
    received: ReceivedFile | None = None
    title: str | None = None
    try:
        for _ in range(MAX_PARTS + 1):
            try:
                part = await reader.next()
            except InvalidHeader as exc:
                if "filename" in str(exc.hdr):
                    raise DocumentRefused(RefusalReason.FILENAME, "the file name must not "
                                          "contain control characters") from None
                raise ApiError(400, "bad_request", "malformed multipart/form-data body: a "
                               "part's header is invalid") from None
            except (ValueError, AssertionError, KeyError, HttpProcessingError):
                raise ApiError(400, "bad_request", "malformed multipart/form-data body") \
                    from None
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise DocumentRefused(RefusalReason.FORM, "the form must not nest multipart bodies")
            if part.name == "file" and received is None:
                received = await _receive_file(part, max_bytes)
            elif part.name == "title" and title is None:
                title = await _read_title(part)
            else:
                name = (part.name or "")[:40]
                raise DocumentRefused(RefusalReason.FORM, f"the form has an unknown or "
                                      f"repeated part {name!r}: send `file` and, if you "
                                      f"like, `title`")
        else:
            raise DocumentRefused(RefusalReason.FORM, "the form has too many parts")
        if received is None:
            raise DocumentRefused(RefusalReason.FORM, "the form has no `file` part")
    except BaseException:
        if received is not None:
            await discard(received)
        raise
    return UploadForm(received, title)


async def discard(received: ReceivedFile) -> None:
    """Delete a received file."""
    await asyncio.to_thread(_unlink, received.path)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _read_title(part: BodyPartReader) -> str:
    raw = bytearray()
    while chunk := await part.read_chunk(MAX_TITLE_BYTES):
        raw += chunk
        if len(raw) > MAX_TITLE_BYTES:
            raise DocumentRefused(RefusalReason.TITLE, "the title is too long (at most 200 "
                                  "characters)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentRefused(RefusalReason.TITLE, "the title is not UTF-8 text") from None


async def _receive_file(part: BodyPartReader, max_bytes: int) -> ReceivedFile:
    filename = checked_filename(part.filename)
    handle, name = tempfile.mkstemp(prefix="vcbridge-document-")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            hasher = hashlib.sha256()
            size = 0
            head = b""
            pending = bytearray()
            while chunk := await part.read_chunk(_READ_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise too_large(max_bytes)
                hasher.update(chunk)
                if len(head) < HEAD_BYTES:
                    head += chunk[:HEAD_BYTES - len(head)]
                pending += chunk
                if len(pending) >= _WRITE_BYTES:
                    await asyncio.to_thread(out.write, bytes(pending))
                    pending.clear()
            await asyncio.to_thread(out.write, bytes(pending))
    except BaseException:
        await asyncio.to_thread(_unlink, path)
        raise
    if size == 0:
        await asyncio.to_thread(_unlink, path)
        raise DocumentRefused(RefusalReason.EMPTY, "the file is empty")
    return ReceivedFile(path, filename, size, hasher.hexdigest(), head)
