"""Why a document is refused: a stable reason for clients, and a message for people.

Each is answered 422 in the error contract with `details: {"field", "reason",
"problem"}` (documents/api.py), and nothing is stored."""

from __future__ import annotations

import enum
from typing import Literal


class RefusalReason(enum.StrEnum):
    """The machine-readable reason a document upload is refused (422)."""

    EMPTY = "empty"  # the file has no bytes
    MALFORMED = "malformed"  # the file is damaged or not what its first bytes say
    ENCRYPTED = "encrypted"  # password-protected: its text cannot be read or indexed
    ZIP_BOMB = "zip_bomb"  # it expands to far more than it is
    UNREADABLE = "unreadable"  # it could not be read within the time budget
    FILENAME = "filename"  # the file name has path parts or control characters
    TITLE = "title"  # the title is too long or has control characters
    FORM = "form"  # the form lacks the file part, or has an unknown or repeated part
    SERIES = "series"  # ?series=true for a conference that is no occurrence of a series


# The part of the request each reason is about.
FIELDS: dict[RefusalReason, Literal["title", "form", "series"]] = {
    RefusalReason.TITLE: "title", RefusalReason.FORM: "form", RefusalReason.SERIES: "series"}


class DocumentRefused(Exception):
    """A document that cannot be accepted, and why."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def field(self) -> Literal["file", "title", "form", "series"]:
        """The part of the request at fault: file, title, series or form."""
        return FIELDS.get(self.reason, "file")
