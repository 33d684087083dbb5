"""SIP room systems in a room: dial out when invited, take calls in, hang up at the end.

The scheduler invites every participant when a conference goes live and
redials by its connect policy (`scheduler/connect_policy.py`); the bridge's
room registry passes each invitation of a SIP endpoint (one with a SIP URI in
the roster) to `SipDialer.invite`. The dialer then, in the background so the
scheduler's tick is never held up:

1. opens the site's media leg in the room (`SipLegs.open`: the bridge's
   aiortc peer connection, the offerer);
2. calls the room's URI through the gateway (`JanusGateway.call`) with that offer;
3. gives the answer to the leg; the room reports `joined` when the media
   connects, as for any site;
4. watches the call: a BYE from the room is the room leaving, any other end
   (the gateway lost, the media gone) a drop, which the policy redials.

A call that fails is reported with its reason (`call_outcome.failure_reason`):
busy, unreachable, rejected, no common codec; the policy redials it too.

Calls in (`on_incoming`): the called URI's user part is the conference
(`sip:<conference id>@proxy`), the caller's URI must be a SIP endpoint of the
roster that is a participant of that running conference; anything else is
refused (403 unknown caller or not a participant, 404 no such conference
running here)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select

from bridge.sip.call_outcome import (
    FailureReason,
    failure_reason,
    hangup_is_leaving,
    media_failure_reason,
)
from bridge.sip.janus_gateway import (
    CallEnd,
    IncomingCall,
    JanusGateway,
    SipCall,
    SipCallFailed,
    Srtp,
)
from vcbridge.core.db.engine import Database
from vcbridge.core.db.models import RUNNING_STATUSES, Conference, Endpoint, Participant

log = logging.getLogger(__name__)


class SipLeg(Protocol):
    """The media side of one SIP site in a room (bridge/sip/sip_leg.py)."""

    async def create_offer(self) -> str:
        """The bridge's SDP offer (non-trickle) for a call out."""

    async def accept_answer(self, answer_sdp: str) -> None:
        """Apply the room's answer; raises an error with `.reason` ("no-common-codec",
        "malformed") when it cannot be used."""

    async def answer_offer(self, offer_sdp: str) -> str:
        """The bridge's answer to a call in."""

    def dtmf(self, digit: str) -> None:
        """A digit the room sent by SIP INFO."""


HangupCallback = Callable[[str], Awaitable[None]]


class SipLegs(Protocol):
    """Opens and closes SIP legs in a conference's room (the room seats the site)."""

    async def open(self, conference_id: int, code: str, on_hangup: HangupCallback
                   ) -> SipLeg | None:
        """Seat `code` in the conference's room with a new leg; None if the room is not
        open in this process or refuses the site."""

    async def close(self, conference_id: int, code: str, leg: SipLeg, *, left: bool) -> None:
        """The call ended: the site left (`left`) or dropped; remove its media."""


class SipReports(Protocol):
    """What the dialer tells the scheduler (wired by the composition root)."""

    async def call_failed(self, conference_id: int, code: str, reason: FailureReason,
                          sip_code: int, sip_reason: str) -> None:
        """The call to the room failed (busy, unreachable, rejected, no common codec)."""


@dataclass(frozen=True)
class SipTarget:
    """How to dial one SIP endpoint (from the roster)."""

    code: str
    uri: str
    transport: str = ""
    srtp: str = ""
    proxy: str = ""

    @property
    def dial_uri(self) -> str:
        """The URI with its transport parameter, if the roster gave one."""
        if self.transport and ";transport=" not in self.uri:
            return f"{self.uri};transport={self.transport}"
        return self.uri


_SRTP: dict[str, Srtp] = {"optional": "sdes_optional", "mandatory": "sdes_mandatory"}
# user@host of a SIP URI, without scheme, port, parameters or display name.
_ADDRESS = re.compile(r"sips?:([^@;>\s]+@)?([^;:>\s]+)", re.IGNORECASE)


def address_of(uri: str) -> str:
    """`user@host` (lower case) of a SIP URI, to match a caller against the roster."""
    match = _ADDRESS.search(uri)
    if match is None:
        return ""
    return ((match.group(1) or "") + match.group(2)).lower()


def conference_of(called: str) -> int | None:
    """The conference id in a called URI `sip:<id>@proxy`, or None."""
    match = _ADDRESS.search(called)
    user = (match.group(1) or "").rstrip("@") if match else ""
    return int(user) if user.isdigit() and len(user) < 10 else None


@dataclass(eq=False)
class _Live:
    conference_id: int
    code: str
    leg: SipLeg
    call: SipCall | None = None
    task: asyncio.Task[None] | None = None


class SipDialer:
    """Dials SIP endpoints into their rooms and takes their calls in."""

    def __init__(self, gateway: JanusGateway, database: Database, legs: SipLegs,
                 reports: SipReports) -> None:
        self.gateway = gateway
        self._database = database
        self.legs = legs
        self._reports = reports
        self._live: dict[tuple[int, str], _Live] = {}
        self._dialling: set[tuple[int, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        gateway.on_incoming = self.on_incoming

    async def target(self, code: str) -> SipTarget | None:
        """The endpoint's SIP settings, or None for a site with the agent."""
        async with self._database.read() as session:
            endpoint = await session.scalar(select(Endpoint).where(Endpoint.code == code))
        if endpoint is None or not endpoint.sip_uri:
            return None
        return SipTarget(endpoint.code, endpoint.sip_uri, endpoint.sip_transport,
                         endpoint.sip_srtp, endpoint.sip_proxy)

    async def invite(self, conference_id: int, code: str) -> bool:
        """Dial `code` if it is a SIP endpoint (in the background); False if it is not."""
        target = await self.target(code)
        if target is None:
            return False
        key = (conference_id, code)
        if key in self._dialling or key in self._live:
            return True  # a call is being made or is up: the duplicate invitation is moot
        self._dialling.add(key)
        self._spawn(self._dial(conference_id, target))
        return True

    @property
    def dialling(self) -> frozenset[tuple[int, str]]:
        """(conference, endpoint) calls being made now."""
        return frozenset(self._dialling)

    @property
    def legs_in_use(self) -> int:
        """Calls up now."""
        return sum(1 for live in self._live.values() if live.call is not None)

    async def _dial(self, conference_id: int, target: SipTarget) -> None:
        key = (conference_id, target.code)
        try:
            live: _Live | None = None

            async def hangup(_reason: str) -> None:
                if live is not None and live.call is not None:
                    await live.call.hangup()

            leg = await self.legs.open(conference_id, target.code, hangup)
            if leg is None:
                return
            live = _Live(conference_id, target.code, leg)
            try:
                offer = await leg.create_offer()
                call = await self.gateway.call(target.dial_uri, offer,
                                               srtp=_SRTP.get(target.srtp),
                                               proxy=target.proxy or None)
            except SipCallFailed as exc:
                log.info("SIP call to %s failed: %s %s", target.code, exc.code, exc.reason)
                await self._failed(live, failure_reason(exc.code), exc.code, exc.reason)
                return
            live.call = call
            try:
                await leg.accept_answer(call.answer_sdp)
            except Exception as exc:  # the leg's SipMediaError, or aiortc's own refusal
                kind = getattr(exc, "reason", "malformed")
                await call.hangup()
                await self._failed(live, media_failure_reason(str(kind)), 0,
                                   f"unusable answer: {exc}")
                return
            self._watch(live, call)
        finally:
            self._dialling.discard(key)

    async def _failed(self, live: _Live, reason: FailureReason, sip_code: int,
                      sip_reason: str) -> None:
        # The failure first (the invitation is still out), then the leg goes.
        await self._reports.call_failed(live.conference_id, live.code, reason, sip_code,
                                        sip_reason)
        await self.legs.close(live.conference_id, live.code, live.leg, left=False)

    def _watch(self, live: _Live, call: SipCall) -> None:
        """The call is up: forward its DTMF, and end the leg when it ends."""
        self._live[(live.conference_id, live.code)] = live
        call.on_dtmf = live.leg.dtmf

        async def watch() -> None:
            end: CallEnd = await call.ended
            if self._live.get((live.conference_id, live.code)) is live:
                del self._live[(live.conference_id, live.code)]
            left = hangup_is_leaving(end.code, end.gateway_lost)
            log.info("SIP call of %s ended: %s %s (%s)", live.code, end.code, end.reason,
                     "left" if left else "dropped")
            await self.legs.close(live.conference_id, live.code, live.leg, left=left)

        live.task = self._spawn(watch())

    async def on_incoming(self, incoming: IncomingCall) -> None:
        """A room system called the bridge: seat it in its conference, or refuse it."""
        conference_id = conference_of(incoming.called)
        code = await self._caller(incoming.caller)
        if code is None:
            log.info("SIP call in from unknown %s refused", incoming.caller)
            await incoming.decline(403)
            return
        if conference_id is None or not await self._participates(conference_id, code):
            log.info("SIP call in from %s to %s refused: no such conference for it",
                     code, incoming.called)
            await incoming.decline(404 if conference_id is None else 403)
            return
        live: _Live | None = None

        async def hangup(_reason: str) -> None:
            if live is not None and live.call is not None:
                await live.call.hangup()

        leg = await self.legs.open(conference_id, code, hangup)
        if leg is None:
            await incoming.decline(404)
            return
        live = _Live(conference_id, code, leg)
        try:
            answer = await leg.answer_offer(incoming.offer_sdp)
        except Exception as exc:
            kind = str(getattr(exc, "reason", "malformed"))
            await incoming.decline(488 if kind == "no-common-codec" else 400)
            await self.legs.close(conference_id, code, leg, left=False)
            return
        previous = self._live.get((conference_id, code))
        if previous is not None and previous.call is not None:
            await previous.call.hangup()  # the room called again: the new call wins
        call = await incoming.accept(answer)
        live.call = call
        self._watch(live, call)

    async def _caller(self, caller: str) -> str | None:
        address = address_of(caller)
        if not address:
            return None
        async with self._database.read() as session:
            rows = (await session.execute(
                select(Endpoint.code, Endpoint.sip_uri)
                .where(Endpoint.sip_uri != "", Endpoint.active.is_(True)))).all()
        for row in rows:
            if address_of(row.sip_uri) == address:
                return str(row.code)
        return None

    async def _participates(self, conference_id: int, code: str) -> bool:
        async with self._database.read() as session:
            found = await session.scalar(
                select(Participant.id)
                .join(Conference, Conference.id == Participant.conference_id)
                .join(Endpoint, Endpoint.id == Participant.endpoint_id)
                .where(Conference.id == conference_id, Endpoint.code == code,
                       Conference.status.in_(RUNNING_STATUSES)))
        return found is not None

    async def close_conference(self, conference_id: int) -> None:
        """The room closed: hang up its calls (idempotent)."""
        for key, live in list(self._live.items()):
            if key[0] == conference_id and live.call is not None:
                await live.call.hangup()

    async def stop(self) -> None:
        """Hang up every call and stop the background work."""
        for live in list(self._live.values()):
            if live.call is not None:
                with contextlib.suppress(Exception):
                    await live.call.hangup()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SIP dialer task failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
