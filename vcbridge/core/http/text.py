"""Validators for user-written text in request bodies."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from vcbridge.core.http.json_schema import MULTI_LINE_PATTERN, ONE_LINE_PATTERN


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


@dataclass(frozen=True)
class TextRule:
    """Annotated metadata: `check` runs after the string's own validation, and the
    JSON Schema states the same rule as `pattern` (so the OpenAPI document agrees)."""

    check: Callable[[str], str]
    pattern: str

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


# A single line of user text (names, labels, user names).
line_text = TextRule(_one_line, ONE_LINE_PATTERN)
LineText = Annotated[str, line_text]
# Multi-line user text (an agenda): newlines and tabs allowed.
multi_line_text = TextRule(clean_text, MULTI_LINE_PATTERN)
