"""SIP OPTIONS pings of the roster's SIP room systems: are they reachable, and how fast.

A SIP room has no agent and sends no heartbeat; whether it is switched on and
reachable is asked the SIP way, with an OPTIONS request every `interval`
seconds. The bridge sends them itself (not kamailio's `keepalive` module: that
one knows up or down only, no round-trip time, and would have to be polled over
an RPC interface), through the SIP proxy when one is set for the probe
(`sip_probe_proxy`: the path the calls take) or straight to the room's URI.

Any answer from the room is "reachable" (a 200, but also a 404 or 405: something
SIP answered at that address). No answer within `timeout`, or an answer the proxy
gave for an absent room (408, 480, 5xx), is "unreachable". The round-trip time
is that of the last answer.

One connected UDP socket per probe (closed after it): the kernel picks the
local address that reaches the target, which the Via header must name."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import select

from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import Endpoint
from vcbridge.core.sip_gateway_status import SiteReach

log = logging.getLogger(__name__)

# host[:port] of a SIP URI (the part after "user@", before parameters).
_HOSTPORT = re.compile(r"^sips?:(?:[^@;>]+@)?(\[[^\]]+\]|[^:;>]+)(?::(\d{1,5}))?", re.IGNORECASE)
# Answers a proxy gives for a room it could not reach.
_PROXY_FAILURES = frozenset({408, 480})


def host_port(uri: str) -> tuple[str, int] | None:
    """Where a SIP URI is sent (no DNS: the roster names addresses or resolvable hosts)."""
    match = _HOSTPORT.match(uri)
    if match is None:
        return None
    port = int(match.group(2)) if match.group(2) else 5060
    return match.group(1).strip("[]"), port


def options_request(uri: str, local: tuple[str, int], identity: str, call_id: str,
                    branch: str) -> bytes:
    """An OPTIONS request for `uri` sent from `local`."""
    return (f"OPTIONS {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 10\r\n"
            f"From: <{identity}>;tag={branch[:10]}\r\n"
            f"To: <{uri}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Accept: application/sdp\r\n"
            "User-Agent: vcbridge\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def answer_code(datagram: bytes, call_id: str) -> int | None:
    """The status code of a SIP response to our request `call_id`, or None."""
    text = datagram.decode("utf-8", "replace")
    head, _, _ = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit():
        return None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("call-id", "i") and value.strip() == call_id:
            return int(parts[1])
    return None


def reachable(code: int | None) -> bool:
    """True when the answer came from the room (see the module docstring)."""
    return code is not None and code < 500 and code not in _PROXY_FAILURES


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.final: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        code = answer_code(data[:4096], self.call_id)
        if code is not None and code >= 200 and not self.final.done():
            self.final.set_result(code)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: nobody there.
        if not self.final.done():
            self.final.set_result(503)


@dataclass(frozen=True)
class Probe:
    """One OPTIONS round trip: the final answer (None: none in time) and its time."""

    code: int | None
    seconds: float | None


async def probe(uri: str, *, identity: str, proxy: str = "", timeout: float = 5.0) -> Probe:
    """Send one OPTIONS for `uri` (through `proxy` if set) and wait for its final answer."""
    target = host_port(proxy or uri)
    if target is None:
        return Probe(None, None)
    loop = asyncio.get_running_loop()
    call_id = f"{secrets.token_hex(10)}@vcbridge"
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Answer(call_id), remote_addr=target)
    except OSError:
        return Probe(None, None)
    try:
        local = transport.get_extra_info("sockname")[:2]
        started = time.monotonic()
        transport.sendto(options_request(uri, local, identity, call_id,
                                         secrets.token_hex(8)))
        try:
            async with asyncio.timeout(timeout):
                code = await protocol.final
        except TimeoutError:
            return Probe(None, None)
        return Probe(code, time.monotonic() - started)
    finally:
        transport.close()


# Told of every answered ping: (endpoint id, code, round trip in ms).
AnswerListener = Callable[[int, str, float | None], Awaitable[None]]


class OptionsProber:
    """Pings every active SIP endpoint of the roster every `interval` seconds; each answer
    goes to the `listeners` (the endpoint's health: its heartbeat, `sip` source)."""

    def __init__(self, *, identity: str, proxy: str = "", interval: float = 15.0,
                 timeout: float = 5.0) -> None:
        self._database: Database | None = None
        self._identity = identity
        self._proxy = proxy
        self._interval = interval
        self._timeout = min(timeout, interval)
        self._sites: dict[str, SiteReach] = {}
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[AnswerListener] = []

    def sites(self) -> Mapping[str, SiteReach]:
        """The last probe of each SIP endpoint, by code."""
        return dict(self._sites)

    def start(self, database: Database) -> None:
        """Ping the roster of `database` in the background until `stop`."""
        self._database = database
        self._task = asyncio.create_task(self._run(), name="sip-options-probe")

    async def stop(self) -> None:
        """Stop pinging."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def round(self) -> None:
        """Ping every SIP endpoint once, all at the same time."""
        if self._database is None:
            return
        async with self._database.read() as session:
            rows = (await session.execute(
                select(Endpoint.id, Endpoint.code, Endpoint.sip_uri)
                .where(Endpoint.sip_uri != "", Endpoint.active.is_(True)))).all()
        results = await asyncio.gather(*(
            probe(row.sip_uri, identity=self._identity, proxy=self._proxy,
                  timeout=self._timeout) for row in rows))
        now = time.time()
        sites = {}
        for row, result in zip(rows, results, strict=True):
            before = self._sites.get(row.code)
            up = reachable(result.code)
            sites[row.code] = SiteReach(
                up=up, rtt_seconds=result.seconds if up else None,
                last_seen=now if up else (before.last_seen if before else None),
                code=result.code)
        self._sites = sites
        for row, result in zip(rows, results, strict=True):
            if reachable(result.code):
                rtt_ms = None if result.seconds is None else result.seconds * 1000.0
                for listener in self.listeners:
                    try:
                        await listener(row.id, row.code, rtt_ms)
                    except Exception:  # one listener's failure must not stop the pings
                        log.exception("SIP OPTIONS listener failed for %s", row.code)

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SIP OPTIONS probe round failed")
            await asyncio.sleep(self._interval)
