"""Validators for user-written text in request bodies."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator


def clean_text(value: str) -> str:
    """NFC text without control characters (newlines and tabs allowed).

    Any language and even markup is fine (pages escape it), but control
    characters break calendars, logs, CSV exports and PostgreSQL (NUL)."""
    value = unicodedata.normalize("NFC", value)
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _one_line(value: str) -> str:
    value = clean_text(value)
    if "\n" in value or "\t" in value:
        raise ValueError("must be a single line")
    return value


# A single line of user text (names, labels, user names).
line_text = AfterValidator(_one_line)
LineText = Annotated[str, line_text]
