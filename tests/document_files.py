"""Real meeting documents for the tests, made with the libraries offices' programs
resemble: PDFs with fpdf2 (a Vietnamese text in DejaVu Sans, so the diacritics are real
glyphs and come back out of the text layer), DOCX with python-docx, XLSX with openpyxl,
PPTX with python-pptx, images with Pillow; and the hostile ones, made the same way
and then bent: encrypted, truncated, bombs."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

from harness.service_process import Service
from tests.support import skip_or_fail

# Debian's fonts-dejavu-core (.ci/run installs it).
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def pdf(*paragraphs: str, pages: int = 1, password: str = "") -> bytes:
    """A PDF whose text layer holds `paragraphs` on each of `pages` pages."""
    from fpdf import FPDF
    from fpdf.enums import EncryptionMethod

    if not DEJAVU.exists():
        skip_or_fail(f"the DejaVu font is missing ({DEJAVU}; apt-get install fonts-dejavu-core)")
    document = FPDF()
    document.add_font("DejaVu", fname=str(DEJAVU))
    for _ in range(pages):
        document.add_page()
        document.set_font("DejaVu", size=12)
        for paragraph in paragraphs:
            document.multi_cell(0, 8, paragraph, new_x="LMARGIN", new_y="NEXT")
    if password:
        document.set_encryption(owner_password=password + "-owner", user_password=password,
                                encryption_method=EncryptionMethod.AES_128)
    return bytes(document.output())


def pdf_bomb(inflated_mib: int = 200) -> bytes:
    """A valid one-page PDF carrying one Flate stream of `inflated_mib` MiB of zeros
    (~0.1 % of that on disk): pypdf writes it, zlib compresses it piece by piece."""
    from pypdf import PdfWriter
    from pypdf.generic import EncodedStreamObject, NameObject

    writer = PdfWriter(clone_from=io.BytesIO(pdf("Tài liệu có bom nén")))
    packer = zlib.compressobj(1)
    zeros = bytes(1 << 20)
    packed = b"".join(packer.compress(zeros) for _ in range(inflated_mib)) + packer.flush()
    stream = EncodedStreamObject()
    stream._data = packed
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer.pages[0][NameObject("/PieceInfo")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_slow(operations: int = 400_000) -> bytes:
    """A valid PDF whose one page draws `operations` little texts: reading its text takes
    pypdf seconds of pure Python on one page (within pypdf's own token limit), the kind
    of document that would stall a service reading it on its event loop."""
    from pypdf import PdfWriter
    from pypdf.generic import EncodedStreamObject, NameObject

    writer = PdfWriter(clone_from=io.BytesIO(pdf("Trang rất nặng")))
    stream = EncodedStreamObject()
    stream._data = zlib.compress(b"BT (a) Tj ET\n" * operations, 1)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer.pages[0][NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx(*paragraphs: str) -> bytes:
    """A Word document of `paragraphs` (the first as a heading)."""
    from docx import Document

    document = Document()
    document.add_heading(paragraphs[0], level=1)
    for paragraph in paragraphs[1:]:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx(*cells: str) -> bytes:
    """A workbook with `cells` down column A."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row, value in enumerate(cells, start=1):
        sheet.cell(row=row, column=1, value=value)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def pptx(title: str, body: str) -> bytes:
    """A presentation of one slide."""
    from pptx import Presentation

    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = title
    slide.placeholders[1].text = body
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def image(kind: str = "PNG") -> bytes:
    """A small picture (PNG or JPEG)."""
    from PIL import Image

    picture = Image.new("RGB", (64, 48), (180, 30, 40))
    out = io.BytesIO()
    picture.save(out, kind)
    return out.getvalue()


def docx_bomb(inflated_mib: int = 300) -> bytes:
    """A DOCX whose package also holds a part of `inflated_mib` MiB of zeros."""
    out = io.BytesIO()
    with (zipfile.ZipFile(io.BytesIO(docx("Kế hoạch"))) as source,
          zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target):
        for info in source.infolist():
            target.writestr(info, source.read(info.filename))
        with target.open("word/media/image1.bin", "w") as part:
            zeros = bytes(1 << 20)
            for _ in range(inflated_mib):
                part.write(zeros)
    return out.getvalue()


def docx_overlapping(copies: int = 50) -> bytes:
    """A DOCX whose central directory lists its main part `copies` more times under other
    names, every entry pointing at the same compressed data (how a small archive claims
    to hold far more): zipfile writes the directory for the entries it is given."""
    out = io.BytesIO()
    with (zipfile.ZipFile(io.BytesIO(docx("Kế hoạch"))) as source,
          zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target):
        for info in source.infolist():
            target.writestr(info, source.read(info.filename))
        shared = target.getinfo("word/document.xml")
        for number in range(copies):
            alias = zipfile.ZipInfo(f"word/copy{number}.xml", shared.date_time)
            for field in ("compress_type", "compress_size", "file_size", "CRC",
                          "header_offset", "flag_bits", "extra"):
                setattr(alias, field, getattr(shared, field))
            target.filelist.append(alias)
    return out.getvalue()


def plain_zip() -> bytes:
    """A ZIP that is no Office document."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("ghi-chu.txt", "Không phải tài liệu Office")
    return out.getvalue()


def upload(service: Service, conference: int, data: bytes, filename: str,
           title: str | None = None, *, series: bool = False,
           token: str | None = None) -> tuple[int, Any]:
    """POST a document to a running service as multipart/form-data (as a browser would
    send it: the file name raw, UTF-8); its status and JSON answer."""
    boundary = f"vcbridge-{uuid.uuid4().hex}"
    parts = []
    if title is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="title"'
                     f"\r\n\r\n{title}\r\n".encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream'
                 f"\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    query = "?series=true" if series else ""
    request = urllib.request.Request(
        f"{service.base}/api/v1/conferences/{conference}/documents{query}",
        data=b"".join(parts), method="POST",
        headers={"Authorization": f"Bearer {token or service.token}",
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
