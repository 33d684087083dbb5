"""Serving the application on a TCP port, with every answer in the error contract.

aiohttp refuses some requests before any middleware runs: a request line or a
header field longer than its parser's limit (8190 bytes), a malformed request
line or header. Its `RequestHandler.handle_error` answers those in plain text,
and there is no public hook to change that (aio-libs/aiohttp#3287). So the
connection handler here is a subclass that answers them as
`{"error": {"code", "message", "details"}}`, and `run` serves the app with it.

Why not raise the parser's limits and check the headers in a middleware? Some
limit stays in the parser (a larger one costs memory on every connection), and a
header past it would still get plain text. Overriding the one method that builds
the refusal covers every refusal, whatever its size. `web.run_app` builds its own
runner, so `run` is the small part of it the service needs: one TCP site, SIGINT
and SIGTERM stop it gracefully (the runner's cleanup: stop accepting, let requests
finish, run the app's cleanup contexts)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from vcbridge.core.http.errors import ApiError
from vcbridge.core.http.render import render

log = logging.getLogger(__name__)


class ContractRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering the requests it refuses itself in the
    error contract (JSON) instead of plain text."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The refusal of a request aiohttp could not parse (4xx), or of a handler that
        failed outside the app's middlewares (500, 504). Closes the connection."""
        if request.writer.output_size > 0:  # as aiohttp: too late for another answer
            raise ConnectionError("response already started; cannot send the error")
        if isinstance(exc, HttpProcessingError) and 400 <= status < 500:
            # A client's malformed request: one line in the log, no traceback, and not
            # aiohttp's message, which quotes the client's bytes (a token, say).
            log.info("refused a malformed request from %s: %s (%d)", request.remote,
                     type(exc).__name__, status)
            error = self._refusal(status, exc)
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            error = (ApiError(504, "timeout", "the request took too long") if status == 504
                     else ApiError(500, "internal", "internal server error"))
        response = render(error.model(), status=error.status)
        response.force_close()
        return response

    def _refusal(self, status: int, exc: HttpProcessingError) -> ApiError:
        if isinstance(exc, LineTooLong):
            limit = max(self.max_line_size, self.max_field_size)
            return ApiError(status, "bad_request",
                            f"request line or header field too long (at most {limit} bytes)",
                            {"limit_bytes": limit})
        # aiohttp's own message names the problem; it may quote the client's bytes.
        return ApiError(status, "bad_request", f"malformed HTTP request: {exc.message[:200]}")


class ContractServer(web.Server):
    """aiohttp's low-level server, making `ContractRequestHandler` connections."""

    def __call__(self) -> RequestHandler:
        return ContractRequestHandler(self, loop=self._loop, **self._kwargs)


class ContractAppRunner(web.AppRunner):
    """An `AppRunner` whose connections answer aiohttp's own refusals in JSON."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app, as AppRunner does
        return ContractServer(
            plain.request_handler, request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation, loop=plain._loop,
            **plain._kwargs,
        )


def run(app: web.Application, *, host: str, port: int,
        announce: Callable[[str], Any] = print) -> None:
    """Serve `app` on `host:port` until SIGINT or SIGTERM, then shut down gracefully."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        runner = ContractAppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            announce(f"======== Running on {site.name} ========")
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
