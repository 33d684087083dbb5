"""The error contract: `{"error": {"code", "message", "details"}}` with the right status.

Handlers raise `ApiError`; the middleware turns it, aiohttp's own HTTP
errors and anything unexpected into that JSON shape (never an HTML page)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from vcbridge.core.http.error_models import Error
from vcbridge.core.http.render import body_of, render

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the client as JSON."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def model(self) -> Error:
        """`{"error": {"code", "message", "details"}}` (details only when there are some)."""
        return Error.of(self.code, self.message, self.details)

    def body(self) -> dict[str, Any]:
        """`{"code", "message", "details"}`: the error inside a WebSocket message."""
        body: dict[str, Any] = body_of(self.model().error)
        return body


def bad_request(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "bad_request", message, details)


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str = "not allowed for your role") -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, details: Any = None) -> ApiError:
    return ApiError(409, "conflict", message, details)


def invalid(message: str, details: Any = None) -> ApiError:
    return ApiError(422, "invalid", message, details)


def error_response(error: ApiError) -> web.Response:
    """The JSON response for `error`."""
    return render(error.model(), status=error.status, headers=error.headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with the JSON error contract.

    A path or query string carrying control characters (a NUL, say) is
    refused here: no code, name or filter of ours contains one, and
    PostgreSQL would reject it deep inside a query."""
    try:
        if _has_control(request.path) or any(
            _has_control(k) or _has_control(v) for k, v in request.query.items()
        ):
            raise bad_request("control characters are not allowed in the URL")
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and exc.content_type == "text/plain" else exc.reason
        if exc.status == 413:
            message = "request body too large"
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(
            ApiError(exc.status, _HTTP_CODES.get(exc.status, "error"), message, headers=headers)
        )
    except ConnectionResetError:
        # The client left mid-answer (a WebSocket handshake under load, say): nobody to
        # answer, and not the service's error.
        log.info("client left during %s %s", request.method, request.path)
        return error_response(ApiError(400, "bad_request", "the client closed the connection"))
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal", "internal server error"))
