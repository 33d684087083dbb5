"""Which kinds of file a meeting document may be, told by content (never by its name).

The first bytes decide the family: a PDF, a ZIP (which `inspection` then opens to
tell a DOCX, XLSX or PPTX by its main part), a PNG or a JPEG. Anything else is
refused (415), and a PNG whose header is implausible is refused as malformed (422)."""

from __future__ import annotations

import enum
import struct

from documents.refusals import DocumentRefused, RefusalReason

# The bytes `sniff` needs: a PDF's header may follow up to 1 KB of junk.
HEAD_BYTES = 1024
# A PNG larger than this in either dimension is refused (no meeting image is).
MAX_IMAGE_SIDE = 30_000



class MediaType(enum.StrEnum):
    """What may be uploaded, as media types (what the download is served as)."""

    PDF = "application/pdf"
    DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    PNG = "image/png"
    JPEG = "image/jpeg"


PDF = MediaType.PDF
DOCX = MediaType.DOCX
XLSX = MediaType.XLSX
PPTX = MediaType.PPTX
PNG = MediaType.PNG
JPEG = MediaType.JPEG
# The same, as people know them.
ACCEPTED_NAMES = ("PDF", "DOCX", "XLSX", "PPTX", "PNG", "JPEG")

# An OOXML package's main part content type -> the document's media type.
OOXML_MAIN_PARTS: dict[str, MediaType] = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": DOCX,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": XLSX,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": PPTX,
}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_ZIP_MAGIC = b"PK\x03\x04"
# Compound File Binary: .doc/.xls/.ppt, and password-protected DOCX/XLSX/PPTX.
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class Family(enum.Enum):
    """What the first bytes say the file is."""

    PDF = "pdf"
    OOXML = "ooxml"  # a ZIP: a DOCX, XLSX or PPTX if its main part says so
    PNG = "png"
    JPEG = "jpeg"


class WrongType(Exception):
    """The content is none of the accepted kinds; the message says what it looks like."""


def sniff(head: bytes) -> Family:
    """The family of a file from its first HEAD_BYTES bytes; WrongType if none,
    DocumentRefused for a PNG whose header is damaged or implausible."""
    if b"%PDF-" in head[:HEAD_BYTES]:
        return Family.PDF
    if head.startswith(_ZIP_MAGIC):
        return Family.OOXML
    if head.startswith(_PNG_MAGIC):
        _check_png(head)
        return Family.PNG
    if head.startswith(_JPEG_MAGIC):
        return Family.JPEG
    if head.startswith(_CFB_MAGIC):
        raise WrongType("an old-format Office file (.doc, .xls, .ppt) or a password-protected "
                        "one: save it as DOCX, XLSX or PPTX without a password")
    raise WrongType("not a PDF, DOCX, XLSX, PPTX, PNG or JPEG file")


def _check_png(head: bytes) -> None:
    # The first chunk must be IHDR (13 bytes: width, height, ...).
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise DocumentRefused(RefusalReason.MALFORMED, "a damaged PNG image (no IHDR header)")
    width, height = struct.unpack(">II", head[16:24])
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise DocumentRefused(RefusalReason.MALFORMED, f"a PNG image of {width}x{height} pixels "
                              f"(at most {MAX_IMAGE_SIDE} on each side)")
