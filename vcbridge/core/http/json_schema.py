"""What a request model's JSON Schema must say beyond what pydantic derives.

The OpenAPI document (vcbridge/openapi_routes.py) is built from the
request models, and tests/test_api_contract.py holds the service to it in
both directions. A rule enforced in code (no control characters, a
password's length) is stated here too, so that the document allows exactly
what the service accepts; and JSON's one number type is honoured (5.0 is
the integer 5 to JSON Schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# unicodedata's "Cc" (what vcbridge.core.http.text refuses): U+0000-U+001F and U+007F-U+009F.
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
# The same, but newlines and tabs allowed (multi-line text such as an agenda).
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
# The error middleware refuses these in a URL's path and query (vcbridge/core/http/errors.py).
URL_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"


class Documented:
    """Annotated metadata: JSON Schema keywords added to the type's schema; validation
    is unchanged (the validator that enforces the rule sits beside it)."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


def _whole_number(value: Any) -> Any:
    # Strict models refuse 5.0 for an int, yet JSON Schema's "integer" includes it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Annotated metadata for an int field of a strict model, after its constraints
# (Annotated[int, Field(ge=1), whole_number]): it also takes 5.0, as JSON Schema does.
whole_number = BeforeValidator(_whole_number)
