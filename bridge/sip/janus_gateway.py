"""A typed async client of Janus's SIP plugin (the bridge's SIP gateway), over Janus's HTTP API.

Janus's HTTP transport is request/response plus one long poll per session
(`GET /janus/<session>`) that returns the session's events; the poll also
keeps the session alive, and a `keepalive` goes out when the poll has been
quiet for a while. HTTP was chosen over WebSocket because Debian's Janus
ships both and the long poll needs nothing but aiohttp's client, which the
service already uses; the API is the same.

What the gateway holds on Janus:

- one session; when it is lost (Janus restarted, the session timed out,
  Janus unreachable) every call in progress ends with `gateway_lost=True`
  (the dialer redials those legs) and the gateway connects again on its own,
  every `retry_seconds`, for as long as it runs;
- a *master* handle with the bridge's SIP identity: REGISTERed with the
  proxy when `SipIdentity.register` (calls into the bridge reach it through
  the proxy, kamailio), otherwise a guest (no REGISTER);
- `incoming_helpers` helper handles under a registered master: Janus gives
  an incoming call to the master or, if it is busy, to a free helper
  (Janus's "multiple calls" feature), so several rooms can dial in at once;
- one handle per outgoing call (a guest with the same identity), detached
  when the call ends: Janus's SIP plugin binds one SIP stack per handle and
  allows one call on it;
- `ready_calls` such guest handles made and registered ahead, so that a call
  is one request: Janus's SIP plugin handles requests one at a time and each
  REGISTER (even a guest's) waits about 100 ms for its new SIP stack, so ten
  rooms dialled at a conference's start waited a second behind one another
  (bench/sip.py). A call takes a ready handle (with the default proxy) when
  there is one, and another is made in the background.

Everything Janus says is checked before use: an event that is not what the
plugin documents is logged and ignored, never raised into the caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from vcbridge.core.sip_gateway_status import GatewayStatus

log = logging.getLogger(__name__)

Srtp = Literal["sdes_optional", "sdes_mandatory"]
JSON = dict[str, Any]

PLUGIN = "janus.plugin.sip"
# Janus's error for a session it does not know (it restarted, or the session timed out).
NO_SUCH_SESSION = 458
# The SIP code a call fails with when Janus itself could not be asked (not a SIP answer).
NO_GATEWAY = 0


class JanusError(Exception):
    """Janus refused a request or could not be reached."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class SipCallFailed(Exception):
    """An outgoing call was not answered: the SIP final response (or 0: no answer at all)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class SipIdentity:
    """Who the bridge is on SIP.

    `uri`: its address of record (`sip:bridge@proxy`); `proxy`: the outbound
    proxy every request goes through (kamailio), or "" to send straight to
    the called URI; `register`: REGISTER with the proxy so calls into the
    bridge reach it; `secret`: the digest password, if the registrar asks."""

    uri: str
    proxy: str = ""
    register: bool = False
    secret: str = field(default="", repr=False)
    display_name: str = "vcbridge"


@dataclass(frozen=True)
class CallEnd:
    """How a call ended: the SIP code and reason Janus reported, and whether the
    gateway itself was lost (then nobody hung up: the leg dropped)."""

    code: int
    reason: str
    gateway_lost: bool = False


class _Handle:
    """One plugin handle: its events arrive on `events`."""

    def __init__(self, handle_id: int) -> None:
        self.id = handle_id
        self.events: asyncio.Queue[JSON] = asyncio.Queue(maxsize=256)
        self.call: SipCall | None = None


class SipCall:
    """One established call on a handle of the gateway."""

    def __init__(self, gateway: JanusGateway, handle: _Handle, answer_sdp: str,
                 peer: str, *, own_handle: bool) -> None:
        self._gateway = gateway
        self._handle = handle
        self._own_handle = own_handle
        self.answer_sdp = answer_sdp
        self.peer = peer
        self.ended: asyncio.Future[CallEnd] = asyncio.get_running_loop().create_future()
        # Digits the room sent as SIP INFO (application/dtmf-relay); RFC 4733 digits
        # travel in the media, and the leg reads them there.
        self.on_dtmf: Callable[[str], None] | None = None

    async def hangup(self) -> None:
        """End the call (BYE); idempotent. The handle is released."""
        if not self.ended.done():
            with contextlib.suppress(JanusError):
                await self._gateway._message(self._handle, {"request": "hangup"})
            self._finish(CallEnd(200, "hung up by the bridge"))

    def _finish(self, end: CallEnd) -> None:
        if self.ended.done():
            return
        self.ended.set_result(end)
        self._handle.call = None
        self._gateway._call_done(self._handle, own_handle=self._own_handle)

    def _event(self, result: JSON) -> None:
        event = result.get("event")
        if event == "hangup":
            code = result.get("code")
            reason = result.get("reason")
            self._finish(CallEnd(code if isinstance(code, int) else 0,
                                 reason if isinstance(reason, str) else ""))
        elif event == "info" and self.on_dtmf is not None:
            digit = dtmf_relay_digit(result.get("type"), result.get("content"))
            if digit is not None:
                self.on_dtmf(digit)


@dataclass
class IncomingCall:
    """A call into the bridge, waiting for `accept` or `decline`."""

    caller: str  # the caller's SIP URI (From)
    called: str  # the URI it called (To): `sip:<conference>@proxy`
    offer_sdp: str
    _gateway: JanusGateway
    _handle: _Handle
    _answered: bool = False

    async def accept(self, answer_sdp: str) -> SipCall:
        """Answer with the bridge's SDP; the call is up when this returns."""
        self._answered = True
        call = SipCall(self._gateway, self._handle, answer_sdp, self.caller, own_handle=False)
        self._handle.call = call
        self._gateway._legs += 1
        try:
            await self._gateway._message(
                self._handle, {"request": "accept"},
                jsep={"type": "answer", "sdp": answer_sdp, "trickle": False})
        except JanusError as exc:
            call._finish(CallEnd(NO_GATEWAY, str(exc)))
        return call

    async def decline(self, code: int = 603) -> None:
        """Refuse the call with SIP `code` (403: unknown caller, 404: no such conference)."""
        if self._answered:
            return
        self._answered = True
        with contextlib.suppress(JanusError):
            await self._gateway._message(self._handle, {"request": "decline", "code": code})


def dtmf_relay_digit(content_type: object, content: object) -> str | None:
    """The digit of a SIP INFO `application/dtmf-relay` body ("Signal=5\\r\\nDuration=160"),
    or None for any other body."""
    if not isinstance(content_type, str) or not isinstance(content, str):
        return None
    if content_type.split(";")[0].strip().lower() != "application/dtmf-relay":
        return None
    for line in content.splitlines():
        name, _, value = line.partition("=")
        if name.strip().lower() == "signal":
            digit = value.strip()
            if len(digit) == 1 and digit in "0123456789*#ABCD":
                return digit
    return None


IncomingHandler = Callable[[IncomingCall], Awaitable[None]]


class JanusGateway:
    """The bridge's connection to Janus's SIP plugin (see the module docstring)."""

    def __init__(self, url: str, identity: SipIdentity, *,
                 on_incoming: IncomingHandler | None = None, incoming_helpers: int = 4,
                 ready_calls: int = 4, request_timeout: float = 10.0, call_timeout: float = 45.0,
                 keepalive_seconds: float = 25.0, retry_seconds: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.identity = identity
        self.on_incoming = on_incoming
        self._helpers_wanted = incoming_helpers if identity.register else 0
        self._ready_wanted = ready_calls
        self._ready: list[_Handle] = []  # registered guest handles waiting for a call
        self._refilling = False
        self._request_timeout = request_timeout
        self._call_timeout = call_timeout
        self._keepalive = keepalive_seconds
        self._retry = retry_seconds
        self._http: aiohttp.ClientSession | None = None
        self._session: int | None = None
        self._handles: dict[int, _Handle] = {}
        self._master: _Handle | None = None
        self._registered = False
        self._legs = 0
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._gone = asyncio.Event()
        self._closing = False
        # Outgoing calls waiting for their answer: they fail when the session is lost.
        self._dialling: set[asyncio.Future[JSON]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifetime ------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background (and again whenever the session is lost)."""
        self._closing = False
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="janus-gateway")

    async def stop(self) -> None:
        """Hang up every call, destroy the session, close the HTTP client."""
        self._closing = True
        for handle in list(self._handles.values()):
            if handle.call is not None:
                await handle.call.hangup()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            with contextlib.suppress(JanusError, aiohttp.ClientError, TimeoutError):
                await self._post(f"/{self._session}", {"janus": "destroy"})
        self._lost("gateway stopped")
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def wait_connected(self, timeout: float) -> None:
        """Wait until a session (and the registration, if any) is up; TimeoutError if not."""
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    @property
    def ready_calls_waiting(self) -> int:
        """Handles made ready for calls out, waiting."""
        return len(self._ready)

    @property
    def status(self) -> GatewayStatus:
        """Reachable (a session is up), registered (with the proxy), calls up."""
        return GatewayStatus(self._session is not None and self._connected.is_set(),
                             self._registered, self._legs, self.identity.register)

    # -- calls ---------------------------------------------------------------

    async def call(self, uri: str, offer_sdp: str, *, srtp: Srtp | None = None,
                   proxy: str | None = None) -> SipCall:
        """Call `uri` with the bridge's SDP offer; the call once it is answered.

        Raises SipCallFailed with the SIP final response when the room refuses
        (486 busy, 404, 488...), with 408 when nobody answers in time, and with
        code 0 when Janus cannot be asked or is lost meanwhile."""
        if not self._connected.is_set() or self._session is None:
            raise SipCallFailed(NO_GATEWAY, "SIP gateway not connected")
        handle = self._take_ready(proxy)
        registered = handle is not None
        try:
            if handle is None:
                handle = await self._attach()
        except JanusError as exc:
            raise SipCallFailed(NO_GATEWAY, f"SIP gateway: {exc}") from None
        try:
            return await self._dial(handle, uri, offer_sdp, srtp, proxy, registered)
        except BaseException:
            await self._detach(handle)
            raise

    def _take_ready(self, proxy: str | None) -> _Handle | None:
        """A handle registered ahead for a call through the default proxy, if any (and
        another one is made meanwhile)."""
        if proxy not in (None, self.identity.proxy) or not self._ready:
            return None
        handle = self._ready.pop(0)
        self._spawn(self._refill())
        return handle

    async def _refill(self) -> None:
        """Make guest handles ready for calls, up to `ready_calls`."""
        if self._refilling:
            return
        self._refilling = True
        try:
            while (len(self._ready) < self._ready_wanted and self._connected.is_set()
                   and not self._closing):
                handle = await self._attach()
                try:
                    await self._message(handle, self._guest_register(None))
                    await self._expect(handle, {"registered"}, self._request_timeout)
                except BaseException:
                    self._spawn(self._detach(handle))
                    raise
                self._ready.append(handle)
        except (JanusError, SipCallFailed, aiohttp.ClientError, TimeoutError) as exc:
            log.debug("SIP gateway: no handle made ready: %s", exc)
        finally:
            self._refilling = False

    def _guest_register(self, proxy: str | None) -> JSON:
        register = self._register_body("guest")
        outbound = self.identity.proxy if proxy is None else proxy
        if outbound:
            register["proxy"] = outbound
        return register

    async def _dial(self, handle: _Handle, uri: str, offer_sdp: str, srtp: Srtp | None,
                    proxy: str | None, registered: bool) -> SipCall:
        try:
            if not registered:
                await self._message(handle, self._guest_register(proxy))
                await self._expect(handle, {"registered"}, self._request_timeout)
            body: JSON = {"request": "call", "uri": uri}
            if srtp is not None:
                body["srtp"] = srtp
            await self._message(handle, body,
                                jsep={"type": "offer", "sdp": offer_sdp, "trickle": False})
            event, data = await self._expect(handle, {"accepted"}, self._call_timeout)
        except JanusError as exc:
            raise SipCallFailed(NO_GATEWAY, f"SIP gateway: {exc}") from None
        except TimeoutError:
            with contextlib.suppress(JanusError):
                await self._message(handle, {"request": "hangup"})
            raise SipCallFailed(408, "no answer in time") from None
        jsep = data.get("jsep")
        sdp = jsep.get("sdp") if isinstance(jsep, dict) else None
        if not isinstance(sdp, str) or not sdp:
            with contextlib.suppress(JanusError):
                await self._message(handle, {"request": "hangup"})
            raise SipCallFailed(NO_GATEWAY, "the answer carried no SDP")
        peer = event.get("username")
        call = SipCall(self, handle, sdp, peer if isinstance(peer, str) else uri,
                       own_handle=True)
        handle.call = call
        self._legs += 1
        return call

    def _call_done(self, handle: _Handle, *, own_handle: bool) -> None:
        self._legs = max(0, self._legs - 1)
        if own_handle:
            self._spawn(self._detach(handle))

    async def _expect(self, handle: _Handle, wanted: set[str], timeout: float
                      ) -> tuple[JSON, JSON]:
        """Wait for one of the `wanted` plugin events on `handle`: (result, whole message).

        A `hangup`, `registration_failed` or plugin error before it raises
        SipCallFailed with its code; the loss of the session raises it with 0."""
        waiter: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._dialling.add(waiter)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    getter = asyncio.ensure_future(handle.events.get())
                    done, _ = await asyncio.wait({getter, waiter},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if waiter in done:
                        getter.cancel()
                        raise SipCallFailed(NO_GATEWAY, "SIP gateway lost")
                    message = getter.result()
                    data = _plugin_data(message)
                    if data is None:
                        continue
                    if "error_code" in data:
                        raise SipCallFailed(_int(data.get("error_code")),
                                            str(data.get("error", "gateway error")))
                    result = data.get("result")
                    if not isinstance(result, dict):
                        continue
                    event = result.get("event")
                    if event in wanted:
                        return result, message
                    if event == "hangup":
                        raise SipCallFailed(_int(result.get("code")),
                                            str(result.get("reason", "")))
                    if event == "registration_failed":
                        raise SipCallFailed(_int(result.get("code")),
                                            str(result.get("reason", "")))
        finally:
            self._dialling.discard(waiter)

    # -- the session ---------------------------------------------------------

    async def _run(self) -> None:
        """Connect, serve the session until it is lost, and connect again, while running."""
        while not self._closing:
            self._gone = asyncio.Event()
            poll: asyncio.Task[None] | None = None
            keepalive: asyncio.Task[None] | None = None
            try:
                created = await self._post("", {"janus": "create"})
                self._session = _int(_get(created, "data", "id"))
                self._master = await self._attach()
                poll = asyncio.create_task(self._poll())
                keepalive = asyncio.create_task(self._keepalives())
                await self._register()
                self._connected.set()
                self._spawn(self._refill())
                log.info("SIP gateway connected (%s, registered=%s)", self.url,
                         self._registered)
                gone = asyncio.ensure_future(self._gone.wait())
                try:
                    await asyncio.wait({poll, keepalive, gone},
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    gone.cancel()
                for finished in (poll, keepalive):
                    error = finished.exception() if finished.done() else None
                    if error is not None:
                        raise error
            except (JanusError, SipCallFailed, aiohttp.ClientError, TimeoutError, OSError,
                    ValueError) as exc:
                if self._connected.is_set():
                    log.warning("SIP gateway lost: %s", exc)
                else:
                    log.debug("SIP gateway not reachable: %s", exc)
            finally:
                for running in (poll, keepalive):
                    if running is not None:
                        running.cancel()
            self._lost("SIP gateway lost")
            if not self._closing:
                await asyncio.sleep(self._retry)

    async def _register(self) -> None:
        """Register the master (or make it a guest) and add the incoming-call helpers."""
        assert self._master is not None
        await self._message(self._master, self._register_body(
            "register" if self.identity.register else "guest"))
        try:
            result, _ = await self._expect(self._master, {"registered"}, self._request_timeout)
        except (SipCallFailed, TimeoutError) as exc:
            # Calls out still work (each through a guest handle); calls in need it.
            log.warning("SIP gateway: registration of %s failed: %s", self.identity.uri, exc)
            self._registered = False
            return
        self._registered = self.identity.register
        master_id = result.get("master_id")
        if not self._registered or not isinstance(master_id, int):
            return
        for _ in range(self._helpers_wanted):
            helper = await self._attach()
            await self._message(helper, {**self._register_body("helper"),
                                         "master_id": master_id})
            await self._expect(helper, {"registered"}, self._request_timeout)

    async def _keepalives(self) -> None:
        """Tell Janus the session is in use (its session timeout is 60 s by default)."""
        while self._session is not None:
            await asyncio.sleep(self._keepalive)
            await self._post(f"/{self._session}", {"janus": "keepalive"})

    async def _poll(self) -> None:
        """The session's long poll: route every event to its handle until the session is lost."""
        assert self._http is not None
        while self._session is not None:
            url = f"{self.url}/{self._session}?maxev=10&rid={secrets.randbelow(1 << 30)}"
            timeout = aiohttp.ClientTimeout(total=60)
            async with self._http.get(url, timeout=timeout) as response:
                messages = await response.json(content_type=None)
            for message in messages if isinstance(messages, list) else [messages]:
                if isinstance(message, dict):
                    self._route(message)

    def _route(self, message: JSON) -> None:
        kind = message.get("janus")
        if kind == "keepalive":
            return
        if kind == "error" and _int(_get(message, "error", "code")) == NO_SUCH_SESSION:
            raise JanusError("Janus does not know the session", NO_SUCH_SESSION)
        handle = self._handles.get(_int(message.get("sender")))
        if handle is None:
            return
        data = _plugin_data(message)
        result = data.get("result") if data else None
        if isinstance(result, dict):
            if result.get("event") == "incomingcall":
                self._incoming(handle, result, message)
                return
            if handle.call is not None:
                handle.call._event(result)
                return
        if kind == "hangup" and handle.call is not None:
            return  # the PeerConnection closed; the SIP hangup event says why
        if handle.events.full():
            # Nobody waits on this handle (the registered master's re-registrations, a
            # call's progress events): the oldest goes.
            handle.events.get_nowait()
        handle.events.put_nowait(message)

    def _incoming(self, handle: _Handle, result: JSON, message: JSON) -> None:
        jsep = message.get("jsep")
        sdp = jsep.get("sdp") if isinstance(jsep, dict) else None
        caller, called = result.get("username"), result.get("callee")
        incoming = IncomingCall(caller if isinstance(caller, str) else "",
                                called if isinstance(called, str) else "",
                                sdp if isinstance(sdp, str) else "", self, handle)
        if self.on_incoming is None or not incoming.offer_sdp or handle.call is not None:
            # No one to take it, an offerless INVITE (not supported), or a busy handle.
            self._spawn(incoming.decline(486 if handle.call is not None else 488))
            return
        self._spawn(self.on_incoming(incoming))

    def _lost(self, reason: str) -> None:
        """The session is gone: every call ends as lost, every dial fails."""
        self._connected.clear()
        self._registered = False
        self._session = None
        self._master = None
        for waiter in list(self._dialling):
            if not waiter.done():
                waiter.set_result({})
        for handle in list(self._handles.values()):
            if handle.call is not None:
                handle.call._own_handle = False  # the handle is gone with the session
                handle.call._finish(CallEnd(NO_GATEWAY, reason, gateway_lost=True))
        self._handles.clear()
        self._ready.clear()
        self._legs = 0

    # -- requests ------------------------------------------------------------

    def _register_body(self, kind: str) -> JSON:
        body: JSON = {"request": "register", "username": self.identity.uri,
                      "display_name": self.identity.display_name}
        if kind != "register":
            body["type"] = kind
        else:
            # Janus wants the element even when the registrar asks for no password.
            body["secret"] = self.identity.secret
        if self.identity.proxy and kind == "register":
            body["proxy"] = self.identity.proxy
        return body

    async def _attach(self) -> _Handle:
        answer = await self._post(f"/{self._session}", {"janus": "attach", "plugin": PLUGIN})
        handle = _Handle(_int(_get(answer, "data", "id")))
        self._handles[handle.id] = handle
        return handle

    async def _detach(self, handle: _Handle) -> None:
        self._handles.pop(handle.id, None)
        if self._session is not None:
            with contextlib.suppress(JanusError, aiohttp.ClientError, TimeoutError):
                await self._post(f"/{self._session}/{handle.id}", {"janus": "detach"})

    async def _message(self, handle: _Handle, body: JSON, *, jsep: JSON | None = None) -> None:
        request: JSON = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        await self._post(f"/{self._session}/{handle.id}", request)

    async def _post(self, path: str, request: JSON) -> JSON:
        if self._http is None:
            raise JanusError("the gateway is not started")
        request = {**request, "transaction": secrets.token_hex(8)}
        timeout = aiohttp.ClientTimeout(total=self._request_timeout)
        try:
            async with self._http.post(self.url + path, json=request,
                                       timeout=timeout) as response:
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JanusError(f"Janus unreachable: {exc!r}") from None
        if not isinstance(answer, dict):
            raise JanusError("Janus answered with something else than an object")
        if answer.get("janus") == "error":
            code = _int(_get(answer, "error", "code"))
            if code == NO_SUCH_SESSION and path:
                self._gone.set()  # Janus restarted: connect again
            raise JanusError(str(_get(answer, "error", "reason")), code)
        return answer

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("SIP gateway task failed")
        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _get(message: object, *path: str) -> object:
    for key in path:
        if not isinstance(message, dict):
            return None
        message = message.get(key)
    return message


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _plugin_data(message: JSON) -> JSON | None:
    data = _get(message, "plugindata", "data")
    return data if isinstance(data, dict) else None
