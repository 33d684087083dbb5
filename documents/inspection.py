"""Checking an uploaded file and reading its text: runs in a worker process only.

Everything here reads hostile input with pure-Python parsers (pypdf, the OOXML
parts through expat), so documents/reader_worker.py runs it in a child process
under a memory limit, killed past its time budget. What it refuses:

- a PDF that pypdf cannot open (malformed), that is encrypted, or one of whose
  streams inflates past `Limits.stream_bytes` (or all of them past
  `total_bytes`): a zip bomb. Every Flate stream is measured, images included,
  without keeping what it inflates to;
- a ZIP that is no DOCX, XLSX or PPTX (told by the main part its
  `_rels/.rels` names and that part's content type, not by the name), with
  encrypted entries, with duplicate names, with too many entries, with
  entries that overlap (the "better zip bomb": many entries sharing one
  compressed run), or whose declared sizes or compression ratios are those of
  a bomb. XML with a document type declaration is refused (no entity can expand).

Text is read up to `max_pages` pages (slides) and `max_chars` characters, and
reading stops, keeping what it has, once `soft_seconds` have passed; the
service kills the worker at its hard budget whatever happens."""

from __future__ import annotations

import re
import struct
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from xml.parsers import expat

from documents.file_types import OOXML_MAIN_PARTS, PPTX, XLSX, Family, WrongType
from documents.file_types import PDF as PDF_TYPE
from documents.refusals import DocumentRefused, RefusalReason

MIB = 1024 * 1024
_LOCAL_HEADER = b"PK\x03\x04"
_FLATE = ("/FlateDecode", "/Fl")
# The relationship type of an OOXML package's main part (transitional and strict).
_OFFICE_DOCUMENT = "/officeDocument"
_MACRO_ENABLED = ".macroEnabled.main+xml"
_SLIDE = re.compile(r"ppt/slides/slide([0-9]{1,6})\.xml\Z")
_SHEET = re.compile(r"xl/worksheets/sheet([0-9]{1,6})\.xml\Z")


@dataclass(frozen=True)
class Limits:
    """How much of a document is read, and what is taken for a bomb."""

    soft_seconds: float = 15.0
    max_pages: int = 2000
    max_chars: int = 200_000
    # One stream (PDF) or part (ZIP) may inflate to this much; all of them together to
    # `total_bytes`. A 600 dpi grey A4 scan is ~35 MB raw.
    stream_bytes: int = 128 * MIB
    total_bytes: int = 512 * MIB
    # A ZIP part over `ratio_floor_bytes` that inflates more than `max_ratio` times.
    max_ratio: int = 200
    ratio_floor_bytes: int = 4 * MIB
    max_entries: int = 10_000
    # [Content_Types].xml and the relationships: small by nature.
    max_manifest_bytes: int = 1 * MIB


@dataclass(frozen=True)
class Inspection:
    """What the file is and the text it holds (possibly cut at the limits)."""

    media_type: str
    text: str
    truncated: bool


def inspect(path: Path, family: Family, limits: Limits) -> Inspection:
    """Check the file and read its text; DocumentRefused or WrongType if it is refused."""
    deadline = time.monotonic() + limits.soft_seconds
    if family is Family.PDF:
        return _inspect_pdf(path, limits, deadline)
    if family is Family.OOXML:
        return _inspect_ooxml(path, limits, deadline)
    raise ValueError(f"nothing to inspect in a {family.value} file")


class _Text:
    """Text gathered up to `max_chars`; `full` once there is no room left."""

    def __init__(self, max_chars: int, deadline: float) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.max_chars = max_chars
        self.deadline = deadline
        self.truncated = False

    @property
    def full(self) -> bool:
        """No more text is wanted (the limit reached, or the time up)."""
        return self.truncated

    def add(self, text: str) -> None:
        if self.truncated:
            return
        room = self.max_chars - self.size
        if len(text) > room:
            text = text[:room]
            self.truncated = True
        self.parts.append(text)
        self.size += len(text)

    def out_of_time(self) -> bool:
        if time.monotonic() > self.deadline:
            self.truncated = True
        return self.truncated

    def result(self, media_type: str) -> Inspection:
        return Inspection(media_type, clean("".join(self.parts)), self.truncated)


def clean(text: str) -> str:
    """NFC text without control characters (newlines kept), spaces and blank lines
    collapsed, and nothing that UTF-8 cannot carry (a lone surrogate)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if ch == "\n" or unicodedata.category(ch) != "Cc" else " " for ch in text)
    text = re.sub(r"[^\S\n]+", " ", text)
    text = re.sub(r" ?\n[\n ]*\n", "\n\n", text)
    return text.strip()


# -- PDF --------------------------------------------------------------------------------------


def _inspect_pdf(path: Path, limits: Limits, deadline: float) -> Inspection:
    # Imported here: only the worker process needs pypdf.
    import pypdf
    from pypdf.errors import LimitReachedError

    caps = {name: limits.stream_bytes for name in (
        "zlib_maximum_output_length", "lzw_maximum_output_length",
        "run_length_maximum_output_length", "jbig2_maximum_output_length",
        "brotli_maximum_output_length", "array_based_stream_maximum_output_length",
        "image_maximum_buffer_size")}
    with pypdf.apply_configuration(None, **caps):
        try:
            reader = pypdf.PdfReader(path, strict=False)
            if reader.is_encrypted:
                raise DocumentRefused(RefusalReason.ENCRYPTED, "the PDF is encrypted (password-"
                                      "protected): save it without a password")
            pages = len(reader.pages)
        except (DocumentRefused, LimitReachedError):
            raise
        except Exception as exc:
            # pypdf raises many kinds of error on damaged input; all mean the same here.
            raise DocumentRefused(RefusalReason.MALFORMED, f"the PDF is damaged and cannot be "
                                  f"read ({type(exc).__name__})") from None
        if pages == 0:
            raise DocumentRefused(RefusalReason.MALFORMED, "the PDF has no pages")
        try:
            _check_pdf_streams(reader, limits)
            text = _Text(limits.max_chars, deadline)
            for number, page in enumerate(reader.pages):
                if number >= limits.max_pages:
                    text.truncated = True
                if text.full or text.out_of_time():
                    break
                text.add(_page_text(page) + "\n\n")
        except LimitReachedError:
            raise DocumentRefused(RefusalReason.ZIP_BOMB, "the PDF holds a stream that expands to "
                                  "far more than the file (a zip bomb)") from None
        except DocumentRefused:
            raise
        except Exception as exc:
            raise DocumentRefused(RefusalReason.MALFORMED, f"the PDF is damaged and cannot be "
                                  f"read ({type(exc).__name__})") from None
    return text.result(PDF_TYPE)


def _page_text(page: Any) -> str:
    from pypdf.errors import LimitReachedError

    try:
        return str(page.extract_text())
    except LimitReachedError as exc:
        if "decompress" in str(exc).lower():
            raise
        return ""  # a page past pypdf's parsing limits: too complex to index, still a PDF
    except Exception:
        # A page pypdf cannot read (an odd font, say) has no text for the index; the
        # file is still a PDF that viewers open.
        return ""


def _check_pdf_streams(reader: Any, limits: Limits) -> None:
    """Measure what every Flate stream inflates to (streams never sit in object
    streams, so the cross-reference table lists them all)."""
    from pypdf.generic import ArrayObject, EncodedStreamObject, IndirectObject

    total = 0
    entries = [(gen, idnum) for gen, numbers in reader.xref.items() for idnum in numbers]
    if len(entries) > 2_000_000:
        raise DocumentRefused(RefusalReason.ZIP_BOMB, "the PDF has too many objects")
    for gen, idnum in entries:
        obj = _object(reader, IndirectObject(idnum, gen, reader))
        if not isinstance(obj, EncodedStreamObject):
            continue
        filters = obj.get("/Filter")
        first = filters[0] if isinstance(filters, ArrayObject) and filters else filters
        if first not in _FLATE:
            continue
        # pypdf keeps a stream's raw bytes in `_data` (stable since PyPDF2).
        size = _inflated_size(obj._data, limits.stream_bytes)
        total += size
        if size > limits.stream_bytes or total > limits.total_bytes:
            raise DocumentRefused(RefusalReason.ZIP_BOMB, "the PDF holds streams that expand "
                                  "to far more than the file (a zip bomb)")


def _object(reader: Any, reference: Any) -> Any:
    """The object, or None where pypdf cannot read it (pypdf skips it too)."""
    try:
        return reader.get_object(reference)
    except Exception:
        return None


def _inflated_size(data: bytes | str, cap: int) -> int:
    """How many bytes zlib `data` inflates to, counting past `cap` by at most 1 MiB."""
    if isinstance(data, str):
        data = data.encode("latin-1", "replace")
    inflater = zlib.decompressobj()
    size, pending = 0, data
    try:
        while pending and size <= cap:
            size += len(inflater.decompress(pending, MIB))
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error:
        pass  # a damaged stream inflates to what it gave so far
    return size


# -- DOCX, XLSX, PPTX ---------------------------------------------------------------------------


def _inspect_ooxml(path: Path, limits: Limits, deadline: float) -> Inspection:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise DocumentRefused(RefusalReason.MALFORMED, "the file starts as a ZIP archive (as DOCX, "
                              "XLSX and PPTX do) but is damaged") from None
    with archive:
        parts = _checked_parts(path, archive, limits)
        media_type, main = _main_part(archive, parts, limits)
        text = _Text(limits.max_chars, deadline)
        try:
            if media_type == PPTX:
                _slides_text(archive, parts, text, limits)
            elif media_type == XLSX:
                _sheets_text(archive, parts, text, limits)
            else:
                _xml_text(archive, main, text, texts={"t"}, breaks={"p", "br"},
                          spaces={"tab"})
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
            raise DocumentRefused(RefusalReason.MALFORMED, "a part of the document is "
                                  "damaged") from None
    return text.result(media_type)


def _checked_parts(path: Path, archive: zipfile.ZipFile,
                   limits: Limits) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by name, once every bomb check has passed."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise DocumentRefused(RefusalReason.ZIP_BOMB, f"the archive has {len(infos)} parts (at "
                              f"most {limits.max_entries})")
    parts: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename in parts:
            raise DocumentRefused(RefusalReason.MALFORMED, "the archive names one part twice")
        parts[info.filename] = info
        if info.flag_bits & 0x1:
            raise DocumentRefused(RefusalReason.ENCRYPTED, "the archive's parts are encrypted")
        if info.file_size > limits.stream_bytes or (
                info.file_size > limits.ratio_floor_bytes
                and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
            raise DocumentRefused(RefusalReason.ZIP_BOMB, "a part of the archive expands to far "
                                  "more than its size (a zip bomb)")
    if sum(info.file_size for info in infos) > limits.total_bytes:
        raise DocumentRefused(RefusalReason.ZIP_BOMB, "the archive expands to far more than its "
                              "size (a zip bomb)")
    with path.open("rb") as raw:
        _check_no_overlap(raw, infos)
    return parts


def _check_no_overlap(raw: IO[bytes], infos: list[zipfile.ZipInfo]) -> None:
    """Each entry's compressed data must end before the next entry begins: entries
    sharing their data are how a small archive claims petabytes."""
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < end:
            raise DocumentRefused(RefusalReason.ZIP_BOMB,
                                  "the archive's parts overlap (a zip bomb)")
        raw.seek(info.header_offset)
        header = raw.read(30)
        if len(header) < 30 or not header.startswith(_LOCAL_HEADER):
            raise DocumentRefused(RefusalReason.MALFORMED, "the archive is damaged (a part's "
                                  "header is missing)")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        end = info.header_offset + 30 + name_length + extra_length + info.compress_size


def _main_part(archive: zipfile.ZipFile, parts: dict[str, zipfile.ZipInfo],
               limits: Limits) -> tuple[str, str]:
    """The document's media type and its main part's name, from the package itself."""
    for manifest in ("[Content_Types].xml", "_rels/.rels"):
        if manifest not in parts:
            raise WrongType("a ZIP archive, not a DOCX, XLSX or PPTX document")
        if parts[manifest].file_size > limits.max_manifest_bytes:
            raise DocumentRefused(RefusalReason.MALFORMED, f"the package's {manifest} is too large")
    main = ""
    for name, attrs in _elements(archive, "_rels/.rels"):
        if name == "Relationship" and attrs.get("Type", "").endswith(_OFFICE_DOCUMENT):
            main = attrs.get("Target", "").lstrip("/")
            break
    if not main or main not in parts:
        raise WrongType("a ZIP archive without an Office document's main part")
    extension = main.rsplit(".", 1)[-1].lower()
    overrides: dict[str, str] = {}
    defaults: dict[str, str] = {}
    for name, attrs in _elements(archive, "[Content_Types].xml"):
        if name == "Override":
            overrides[attrs.get("PartName", "").lstrip("/").lower()] = attrs.get(
                "ContentType", "")
        elif name == "Default":
            defaults[attrs.get("Extension", "").lower()] = attrs.get("ContentType", "")
    content_type = overrides.get(main.lower()) or defaults.get(extension, "")
    if content_type in OOXML_MAIN_PARTS:
        return OOXML_MAIN_PARTS[content_type], main
    if content_type.endswith(_MACRO_ENABLED):
        raise WrongType("a macro-enabled Office file: save it as DOCX, XLSX or PPTX")
    raise WrongType("an Office package that is not a DOCX, XLSX or PPTX document")


def _local(name: str) -> str:
    """`{namespace} local` (expat's namespace form) without the namespace."""
    return name.rpartition(" ")[2]


def _parser() -> Any:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def no_dtd(*_args: Any) -> None:
        raise DocumentRefused(RefusalReason.MALFORMED, "the document's XML declares a document "
                              "type (refused: its entities could expand without bound)")

    parser.StartDoctypeDeclHandler = no_dtd
    parser.EntityDeclHandler = no_dtd
    return parser


def _feed(archive: zipfile.ZipFile, part: str, parser: Any,
          stop: Callable[[], bool] = lambda: False) -> None:
    """Parse one part in 64 KiB pieces (the archive's declared size bounds it)."""
    try:
        with archive.open(part) as stream:
            while chunk := stream.read(65536):
                parser.Parse(chunk, False)
                if stop():
                    return
            parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise DocumentRefused(RefusalReason.MALFORMED, f"a part of the document is not well-formed "
                              f"XML ({part}: {expat.ErrorString(exc.code)})") from None


def _elements(archive: zipfile.ZipFile, part: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Every element of a small part: its local name and attributes."""
    found: list[tuple[str, dict[str, str]]] = []
    parser = _parser()
    parser.StartElementHandler = lambda name, attrs: found.append((_local(name), attrs))
    _feed(archive, part, parser)
    return iter(found)


def _xml_text(archive: zipfile.ZipFile, part: str, text: _Text, *, texts: set[str],
              breaks: set[str], spaces: frozenset[str] | set[str] = frozenset(),
              skips: frozenset[str] | set[str] = frozenset()) -> None:
    """The character data of the `texts` elements of a part (outside `skips`), a line
    break after each of `breaks` and a space for each of `spaces`."""
    depth = {"text": 0, "skip": 0}

    def start(name: str, _attrs: dict[str, str]) -> None:
        local = _local(name)
        if local in skips:
            depth["skip"] += 1
        elif local in texts:
            depth["text"] += 1
        elif local in spaces:
            text.add(" ")

    def end(name: str) -> None:
        local = _local(name)
        if local in skips:
            depth["skip"] -= 1
        elif local in texts:
            depth["text"] -= 1
        elif local in breaks:
            text.add("\n")

    def data(chars: str) -> None:
        if depth["text"] > 0 and depth["skip"] == 0:
            text.add(chars)

    parser = _parser()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    _feed(archive, part, parser, stop=lambda: text.full or text.out_of_time())


def _slides_text(archive: zipfile.ZipFile, parts: dict[str, zipfile.ZipInfo], text: _Text,
                 limits: Limits) -> None:
    slides = sorted((int(m[1]), name) for name in parts if (m := _SLIDE.match(name)))
    for count, (_number, name) in enumerate(slides):
        if count >= limits.max_pages:
            text.truncated = True
        if text.full or text.out_of_time():
            return
        _xml_text(archive, name, text, texts={"t"}, breaks={"p"})
        text.add("\n")


def _sheets_text(archive: zipfile.ZipFile, parts: dict[str, zipfile.ZipInfo], text: _Text,
                 limits: Limits) -> None:
    """A workbook's shared strings, then the strings written into its sheets (a cell's
    `<is><t>`; numbers and formulas are not text to search)."""
    if "xl/sharedStrings.xml" in parts:
        _xml_text(archive, "xl/sharedStrings.xml", text, texts={"t"}, breaks={"si"},
                  skips={"rPh"})
    sheets = sorted((int(m[1]), name) for name in parts if (m := _SHEET.match(name)))
    for count, (_number, name) in enumerate(sheets):
        if count >= limits.max_pages:
            text.truncated = True
        if text.full or text.out_of_time():
            return
        _xml_text(archive, name, text, texts={"t"}, breaks={"row"}, spaces={"c"})
