"""The name a document is downloaded under and the title it is shown with, checked.

The name is never used on the file system (the content lives in the database),
but it is shown to people and sent back in `Content-Disposition`, so it must be
a plain name: no folder parts (a browser or an old client may send
`C:\\Users\\...\\x.pdf` or `../../x`), no control characters (they break
headers, logs and terminals), and no bidirectional overrides (which make
`tài-liệu‮fdp.exe` look like it ends in ".pdf")."""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

from documents.refusals import DocumentRefused, RefusalReason

MAX_FILENAME_CHARS = 255
MAX_TITLE_CHARS = 200
# Bidirectional embedding, override and isolate controls (category Cf).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def checked_filename(name: str | None) -> str:
    """The file name, NFC, if it is a plain name; DocumentRefused otherwise."""
    if name is None:
        raise DocumentRefused(RefusalReason.FILENAME, "the file part has no file name")
    # Clients escape the name in the form: browsers `"`, CR and LF as %22, %0D, %0A, and
    # others (aiohttp) every byte outside ASCII. Decoded first, so "..%2Fx" is checked as
    # the "../x" it means.
    name = unicodedata.normalize("NFC", _unescaped(name))
    if any(unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS for ch in name):
        raise DocumentRefused(RefusalReason.FILENAME,
                              "the file name must not contain control characters")
    if "/" in name or "\\" in name:
        raise DocumentRefused(RefusalReason.FILENAME,
                              "the file name must be a plain name, without folders")
    name = name.strip()
    if not name:
        raise DocumentRefused(RefusalReason.FILENAME, "the file part has no file name")
    if name in (".", "..") or len(name) > MAX_FILENAME_CHARS:
        raise DocumentRefused(RefusalReason.FILENAME,
                              f"the file name must be a plain name of at most "
                              f"{MAX_FILENAME_CHARS} characters")
    return name


def _unescaped(name: str) -> str:
    try:
        return unquote(name, errors="strict")
    except UnicodeDecodeError:
        return name  # not escapes after all: a name such as "50%C3.pdf", kept as it is


def title_from(filename: str) -> str:
    """A title for a document uploaded without one: its name without the extension."""
    stem, dot, _extension = filename.rpartition(".")
    return (stem if dot and stem.strip() else filename)[:MAX_TITLE_CHARS].strip()


def ascii_fallback(filename: str) -> str:
    """The name in plain ASCII, for `Content-Disposition`'s `filename=` (old clients)."""
    bare = "".join(c for c in unicodedata.normalize("NFD", filename)
                   if not unicodedata.combining(c))
    folded = bare.replace("đ", "d").replace("Đ", "D").encode("ascii", "replace").decode()
    return "".join(ch if ch.isalnum() or ch in " .-_()" else "_" for ch in folded).strip() or "x"


def checked_title(title: str | None, filename: str) -> str:
    """The document's title: the one given (one line, 1-200 characters, no control
    characters), or, when none or a blank one is given, the file name's stem."""
    if title is not None and len(title) > MAX_TITLE_CHARS:  # as sent, as the document says
        raise DocumentRefused(RefusalReason.TITLE, f"the title is too long (at most "
                              f"{MAX_TITLE_CHARS} characters)")
    if title is not None and any(unicodedata.category(ch) == "Cc" for ch in title):
        raise DocumentRefused(RefusalReason.TITLE, "the title must be one line without control "
                              "characters")
    if title is None or not title.strip():
        return title_from(filename)
    return unicodedata.normalize("NFC", title).strip()
