"""The record as a Vietnamese administrative minutes document ("biên bản"), in PDF.

Laid out after the usual form of an administrative document (Decree 30/2020/ND-CP):
A4, a serif face, the governing body and the chairing office top left, the
national motto top right, the place and date, the title in capitals, then the
numbered parts (the conference, attendance, the floor, recordings, documents,
changes to the booking) and the signatures of the secretary and the chair.

Made with fpdf2, embedding a subset of DejaVu Serif (vendored in `fonts/` with its
licence): it has every Vietnamese letter. Text from users (titles, agendas, names,
file names) is drawn as text, never read as markup. Times are shown in the
conference's zone (Asia/Ho_Chi_Minh) as dd/mm/yyyy, 24 h. Blocking (CPU): run it in
a thread."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace

from conference_record.responses import ConferenceRecord, RecordAttendance, RecordChange

FONTS = Path(__file__).with_name("fonts")
FACE = "DejaVuSerif"
_FONT_FILES = {"": "DejaVuSerif.ttf", "B": "DejaVuSerif-Bold.ttf", "I": "DejaVuSerif-Italic.ttf"}
# Points: 12.5 for the body (close to the decree's 13 in a narrower face), 14 for the title.
BODY = 11.5
SMALL = 9.5
TITLE = 14.0
HEAD_FILL = (232, 238, 245)


@dataclass(frozen=True)
class MinutesStyle:
    """What the settings put into the heading."""

    authority: str  # the governing body, e.g. "UBND TỈNH THANH HÓA"
    place: str  # the place of the date line, e.g. "Thanh Hóa"


STATUS = {"scheduled": "Chưa diễn ra", "open": "Phòng họp đang mở", "live": "Đang diễn ra",
          "ended": "Đã kết thúc", "cancelled": "Đã hủy"}
ENDED_BY = {"left": "rời phòng", "dropped": "mất kết nối", "removed": "bị mời ra",
            "end": "hết hội nghị"}
ABSENCE = {"declined": "Báo vắng (từ chối tham dự)",
           "absent": "Vắng mặt (không trả lời các lần mời)",
           "no_answer": "Không trả lời lời mời", "not_invited": "Chưa được mời vào phòng họp",
           "waiting": "Chưa vào phòng họp"}
FLOOR_END = {"released": "tự kết thúc", "revoked": "chủ tọa thu hồi",
             "next": "chuyển điểm cầu khác", "removed": "bị mời ra", "end": "hết hội nghị"}
CHANGE = {"created": "Đặt lịch", "edited": "Sửa lịch", "extended": "Gia hạn",
          "cancelled": "Hủy hội nghị"}
FIELD = {"title": "Tên hội nghị", "agenda": "Nội dung", "chair": "Điểm cầu chủ trì",
         "participants": "Điểm cầu tham dự", "start": "Bắt đầu", "end": "Kết thúc",
         "setup_minutes": "Thời gian chuẩn bị (phút)"}
ROLE = {"admin": "quản trị hệ thống", "booker": "cán bộ đặt lịch", "operator": "người vận hành",
        "it": "cán bộ kỹ thuật", "system": "hệ thống", "endpoint": "điểm cầu"}
WEEKDAY = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")


def clean(text: object) -> str:
    """Text as drawn: precomposed (NFC, as Vietnamese keyboards type it, so each letter
    is one glyph of the font) and without control characters but line breaks."""
    value = unicodedata.normalize("NFC", str(text))
    return "".join(c for c in value if c == "\n" or unicodedata.category(c) != "Cc")


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def day(value: str) -> str:
    """dd/mm/yyyy."""
    return datetime.fromisoformat(value).strftime("%d/%m/%Y")


def clock(value: str | None) -> str:
    """HH:MM (24 h), or "" for none."""
    at = _time(value)
    return "" if at is None else at.strftime("%H:%M")


def moment(value: str | None) -> str:
    """HH:MM dd/mm/yyyy, or "" for none."""
    at = _time(value)
    return "" if at is None else at.strftime("%H:%M %d/%m/%Y")


def span(start: str, end: str | None) -> str:
    """"08:00 – 09:30", with the day of the end when it differs."""
    if end is None:
        return f"{clock(start)} – nay"
    if day(start) != day(end):
        return f"{moment(start)} – {moment(end)}"
    return f"{clock(start)} – {clock(end)}"


def duration(seconds: float) -> str:
    """"1 giờ 05 phút", "12 phút", "40 giây"."""
    total = round(seconds)
    if total < 60:
        return f"{total} giây"
    hours, minutes = divmod(total // 60, 60)
    return f"{hours} giờ {minutes:02d} phút" if hours else f"{minutes} phút"


def size(octets: int) -> str:
    """Bytes with a decimal comma: "1,5 MB"."""
    value, unit = float(octets), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    text = f"{value:.0f}" if unit == "B" else f"{value:.1f}".replace(".", ",")
    return f"{text} {unit}"


def person(user: str | None, role: str | None) -> str:
    if not user:
        return ""
    return f"{user} ({ROLE.get(role or '', role or '')})"


class _Minutes(FPDF):
    """A4 pages with the page number at the foot."""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FACE, "I", 8.5)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, f"Trang {self.page_no()}/{{nb}}", align=Align.C)
        self.set_text_color(0, 0, 0)


def render_pdf(record: ConferenceRecord, style: MinutesStyle) -> bytes:
    """The record as the bytes of a PDF file."""
    pdf = _Minutes(orientation="portrait", unit="mm", format="A4")
    for emphasis, name in _FONT_FILES.items():
        pdf.add_font(FACE, emphasis, str(FONTS / name))
    conference = record.conference
    pdf.set_title(clean(f"Biên bản hội nghị: {conference.title}"))
    pdf.set_subject("Biên bản hội nghị truyền hình trực tuyến")
    pdf.set_author(clean(style.authority))
    pdf.set_creator("vcbridge")
    pdf.set_lang("vi-VN")
    pdf.set_creation_date(datetime.fromisoformat(record.generated_at))
    # The decree's margins: 30 mm on the binding side, 20 mm top, 15 mm right.
    pdf.set_margins(left=30, top=20, right=15)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    _heading(pdf, record, style)
    _part_conference(pdf, record)
    _part_attendance(pdf, record)
    _part_floor(pdf, record)
    _part_recordings(pdf, record)
    _part_documents(pdf, record)
    _part_changes(pdf, record)
    _closing(pdf, record)
    return bytes(pdf.output())


# -- heading ---------------------------------------------------------------------------------


def _heading(pdf: FPDF, record: ConferenceRecord, style: MinutesStyle) -> None:
    conference = record.conference
    top, left_w = pdf.get_y(), 72.0
    right_x = pdf.l_margin + left_w
    right_w = pdf.w - pdf.r_margin - right_x
    # Left: the governing body, the chairing office (bold), a short rule.
    pdf.set_font(FACE, "", 10.5)
    pdf.multi_cell(left_w, 5, clean(style.authority).upper(), align=Align.C,
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FACE, "B", 10.5)
    pdf.multi_cell(left_w, 5, clean(conference.chair_name).upper(), align=Align.C,
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _rule(pdf, pdf.l_margin + left_w / 2, pdf.get_y() + 0.8, 22)
    pdf.set_y(pdf.get_y() + 3)
    pdf.set_font(FACE, "", 10)
    pdf.multi_cell(left_w, 5, f"Mã hội nghị: {conference.id}", align=Align.C,
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    left_bottom = pdf.get_y()
    # Right: the national name and motto, underlined, then the place and date.
    pdf.set_xy(right_x, top)
    pdf.set_font(FACE, "B", 10.5)
    pdf.multi_cell(right_w, 5, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", align=Align.C,
                   new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FACE, "B", 11)
    pdf.multi_cell(right_w, 5.5, "Độc lập - Tự do - Hạnh phúc", align=Align.C,
                   new_x=XPos.LEFT, new_y=YPos.NEXT)
    _rule(pdf, right_x + right_w / 2, pdf.get_y() + 0.8, 58)
    pdf.set_xy(right_x, pdf.get_y() + 4)
    start = datetime.fromisoformat(conference.start)
    pdf.set_font(FACE, "I", 10.5)
    pdf.multi_cell(right_w, 5, clean(f"{style.place}, ngày {start.day:02d} tháng "
                                     f"{start.month:02d} năm {start.year}"), align=Align.C,
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(left_bottom, pdf.get_y()) + 9)
    # The title.
    pdf.set_font(FACE, "B", TITLE)
    pdf.cell(0, 7, "BIÊN BẢN HỘI NGHỊ TRUYỀN HÌNH TRỰC TUYẾN", align=Align.C,
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FACE, "B", 12)
    pdf.multi_cell(0, 6, clean(conference.title), align=Align.C,
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if not record.final:
        pdf.set_font(FACE, "I", SMALL)
        pdf.set_text_color(150, 40, 40)
        pdf.multi_cell(0, 5, "(Bản tạm: hội nghị chưa kết thúc, số liệu có thể còn thay đổi)",
                       align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)
    pdf.ln(4)


def _rule(pdf: FPDF, centre: float, y: float, width: float) -> None:
    pdf.set_line_width(0.3)
    pdf.line(centre - width / 2, y, centre + width / 2, y)


# -- parts -----------------------------------------------------------------------------------


def _part(pdf: FPDF, number: str, title: str) -> None:
    if pdf.will_page_break(22):
        pdf.add_page()
    pdf.ln(2)
    pdf.set_font(FACE, "B", 12)
    pdf.cell(0, 7, f"{number}. {title}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FACE, "", BODY)


def _line(pdf: FPDF, label: str, value: str) -> None:
    """"- Label: value", the label in bold. Both are drawn as plain text (`write` reads
    no markup), so a user's text can never change the font or the layout."""
    pdf.set_x(pdf.l_margin)
    pdf.set_font(FACE, "B", BODY)
    pdf.write(6, f"- {label}: ")
    pdf.set_font(FACE, "", BODY)
    pdf.write(6, clean(value))
    pdf.ln(6)


def _note(pdf: FPDF, text: str) -> None:
    pdf.set_font(FACE, "I", BODY)
    pdf.multi_cell(0, 6, clean(text), align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FACE, "", BODY)


def _table(pdf: FPDF, widths: tuple[float, ...], head: tuple[str, ...],
           rows: Sequence[tuple[str, ...]]) -> None:
    """A bordered table over the text's width: the heading shaded (and repeated on each
    new page), the first column (the number) centred."""
    pdf.set_font(FACE, "", SMALL)
    heading = FontFace(emphasis="BOLD", fill_color=HEAD_FILL)
    aligns = ("CENTER", *("LEFT",) * (len(widths) - 1))
    with pdf.table(width=pdf.epw, align="LEFT", col_widths=widths, text_align=aligns,
                   line_height=4.8, headings_style=heading,
                   borders_layout=TableBordersLayout.ALL, padding=(1.2, 1.5),
                   repeat_headings=1, v_align="TOP") as table:
        header = table.row()
        for text in head:
            header.cell(text, align=Align.C)
        for values in rows:
            row = table.row()
            for text in values:
                row.cell(clean(text))
    pdf.set_font(FACE, "", BODY)
    pdf.ln(2)


def _part_conference(pdf: FPDF, record: ConferenceRecord) -> None:
    conference = record.conference
    _part(pdf, "I", "THÔNG TIN HỘI NGHỊ")
    start = datetime.fromisoformat(conference.start)
    _line(pdf, "Tên hội nghị", conference.title)
    _line(pdf, "Thời gian theo lịch", f"{span(conference.start, conference.end)}, "
          f"{WEEKDAY[start.weekday()]} ngày {day(conference.start)}")
    actual = []
    if conference.opened_at:
        actual.append(f"phòng họp mở lúc {moment(conference.opened_at)}")
    if conference.live_at:
        actual.append(f"bắt đầu lúc {moment(conference.live_at)}")
    if conference.ended_at:
        actual.append(f"kết thúc lúc {moment(conference.ended_at)}")
    if actual:
        _line(pdf, "Thời gian thực tế", "; ".join(actual))
    _line(pdf, "Điểm cầu chủ trì", conference.chair_name)
    _line(pdf, "Số điểm cầu triệu tập", str(record.summary.expected))
    status = STATUS.get(conference.status, conference.status)
    if conference.status == "cancelled" and conference.cancel_reason:
        status = f"{status}. Lý do: {conference.cancel_reason}"
    _line(pdf, "Tình trạng", status)
    if conference.agenda.strip():
        _line(pdf, "Nội dung", "")
        pdf.set_font(FACE, "", BODY)
        pdf.set_x(pdf.l_margin + 5)
        pdf.multi_cell(0, 6, clean(conference.agenda.strip()), new_x=XPos.LMARGIN,
                       new_y=YPos.NEXT)


def _attendance_note(entry: RecordAttendance) -> str:
    if entry.attended:
        gone = [ENDED_BY[i.ended_by] for i in entry.intervals if i.ended_by
                in ("dropped", "removed")]
        notes = (["Chủ trì"] if entry.chair else []) + sorted(set(gone))
        if len(entry.intervals) > 1:
            notes.append(f"vào {len(entry.intervals)} lần")
        return "; ".join(notes)
    note = ABSENCE.get(entry.absence or "", entry.absence or "")
    if entry.invitations:
        note += f" ({entry.invitations} lần mời)"
    return note


def _part_attendance(pdf: FPDF, record: ConferenceRecord) -> None:
    summary = record.summary
    _part(pdf, "II", "THÀNH PHẦN THAM DỰ")
    _line(pdf, "Có mặt", f"{summary.attended}/{summary.expected} điểm cầu")
    if summary.never_came:
        _line(pdf, "Không tham dự", f"{summary.never_came} điểm cầu")
    rows = []
    for index, entry in enumerate(record.attendance, 1):
        times = "\n".join(span(i.start, i.end) for i in entry.intervals)
        present = duration(entry.present_seconds) if entry.attended else ""
        rows.append((str(index), entry.name, times or "—", present, _attendance_note(entry)))
    _table(pdf, (11, 52, 34, 25, 43), ("STT", "Điểm cầu", "Có mặt (giờ:phút)",
                                         "Thời lượng", "Ghi chú"), rows)


def _part_floor(pdf: FPDF, record: ConferenceRecord) -> None:
    _part(pdf, "III", "DIỄN BIẾN PHÁT BIỂU")
    if not record.floor:
        _note(pdf, "Không có điểm cầu nào được chủ tọa cho phát biểu.")
        return
    rows = []
    for index, turn in enumerate(record.floor, 1):
        by = person(turn.granted_by.user, turn.granted_by.role) or "Điểm cầu chủ trì"
        end = FLOOR_END.get(turn.ended_by or "", "đang phát biểu")
        rows.append((str(index), turn.name, clock(turn.requested_at) or "—",
                     f"{span(turn.granted_at, turn.until)}\n({end})",
                     duration(turn.seconds), by))
    _table(pdf, (11, 42, 17, 36, 22, 37), ("STT", "Điểm cầu phát biểu", "Xin lúc",
                                            "Phát biểu", "Thời lượng", "Người cho phát biểu"),
           rows)


def _part_recordings(pdf: FPDF, record: ConferenceRecord) -> None:
    _part(pdf, "IV", "GHI HÌNH HỘI NGHỊ")
    if record.recordings is None:
        _note(pdf, "Danh sách bản ghi chỉ dành cho cán bộ Văn phòng và điểm cầu chủ trì.")
        return
    if not record.recordings:
        _note(pdf, "Hội nghị không được ghi hình.")
        return
    rows = [(str(i), r.id, moment(r.started),
             "đang ghi" if r.recording else (duration(r.duration) if r.duration else "—"),
             size(r.size)) for i, r in enumerate(record.recordings, 1)]
    _table(pdf, (11, 72, 32, 26, 24), ("STT", "Tệp ghi hình", "Bắt đầu ghi", "Thời lượng",
                                        "Dung lượng"), rows)


def _part_documents(pdf: FPDF, record: ConferenceRecord) -> None:
    _part(pdf, "V", "TÀI LIỆU HỘI NGHỊ")
    if record.documents is None:
        _note(pdf, "Hệ thống chưa lưu tài liệu hội nghị.")
        return
    if not record.documents:
        _note(pdf, "Không có tài liệu kèm theo.")
        return
    rows = [(str(i), d.title or d.filename, d.filename, size(d.size),
             f"{person(d.uploaded_by, None).split(' (')[0]}\n{moment(d.uploaded_at)}")
            for i, d in enumerate(record.documents, 1)]
    _table(pdf, (11, 55, 44, 20, 35), ("STT", "Tài liệu", "Tệp", "Dung lượng", "Người đăng"),
           rows)


def _change_text(change: RecordChange) -> str:
    if change.action == "created":
        return (f"Đặt lịch định kỳ ({change.occurrences} lần họp)" if change.occurrences
                else "Đặt lịch hội nghị")
    if change.action == "cancelled":
        return f"Lý do: {change.reason}" if change.reason else "Không ghi lý do"
    parts = []
    for item in change.fields:
        label = FIELD.get(item.field, item.field)
        parts.append(f"{label}: {_value(item.field, item.before)} → "
                     f"{_value(item.field, item.after)}")
    return "\n".join(parts)


def _value(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name in ("start", "end") and isinstance(value, str):
        try:
            return moment(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "…"


def _part_changes(pdf: FPDF, record: ConferenceRecord) -> None:
    _part(pdf, "VI", "LỊCH SỬ ĐẶT LỊCH VÀ THAY ĐỔI")
    if not record.changes:
        _note(pdf, "Không có bản ghi thay đổi.")
        return
    rows = [(str(i), moment(c.at), person(c.user, c.role), CHANGE.get(c.action, c.action),
             _change_text(c)) for i, c in enumerate(record.changes, 1)]
    _table(pdf, (11, 27, 37, 22, 68), ("STT", "Thời gian", "Người thực hiện", "Thao tác",
                                        "Nội dung"), rows)


def _closing(pdf: FPDF, record: ConferenceRecord) -> None:
    if pdf.will_page_break(48):
        pdf.add_page()
    pdf.ln(3)
    _note(pdf, f"Biên bản do hệ thống hội nghị truyền hình trực tuyến lập tự động lúc "
               f"{moment(record.generated_at)}, từ nhật ký của hệ thống (điểm danh, điều hành "
               f"phát biểu, nhật ký thao tác).")
    pdf.ln(6)
    width = (pdf.w - pdf.l_margin - pdf.r_margin) / 2
    y = pdf.get_y()
    for index, (who, hint) in enumerate((("THƯ KÝ HỘI NGHỊ", "(Ký, ghi rõ họ tên)"),
                                         ("CHỦ TRÌ HỘI NGHỊ", "(Ký, ghi rõ họ tên)"))):
        pdf.set_xy(pdf.l_margin + index * width, y)
        pdf.set_font(FACE, "B", 11)
        pdf.cell(width, 6, who, align=Align.C, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font(FACE, "I", 10)
        pdf.cell(width, 5, hint, align=Align.C)
