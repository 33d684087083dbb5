"""The agent's health reports to the controller's monitoring (docs/monitoring.md).

Every few seconds, and at once after a pre-flight call, a heartbeat goes on the
event stream while it is up (no request per report), else by POST; a failure
is only logged. The controller's answer time is the next report's round trip.
Each report's figures cover the interval since the previous one: the machine's
CPU utilisation (`machine.py`), the devices probed now (`device_probe.py`) and,
in a conference, the call's figures from the agent's connections
(`call_stats.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.agent.controller import UNREACHABLE, Controller, describe
from bridge.agent.machine import CpuMeter
from bridge.agent.preflight import PreflightResult
from vcbridge import __version__

log = logging.getLogger(__name__)

TOO_SOON_RETRY_SECONDS = 1.5


class HealthSource(Protocol):
    """What a heartbeat reports about the agent."""

    def camera_present(self) -> bool:
        """Whether the camera is there (probed now)."""

    async def microphone_present(self) -> bool:
        """Whether the microphone is there and not silent."""

    def joined_conferences(self) -> list[int]:
        """The conferences the agent is in, media up."""

    async def call_figures(self, conference: int, seconds: float) -> dict[str, Any] | None:
        """The heartbeat's `call` figures of `conference` over the last `seconds`
        (without `conference` and `source`); None when not connected to it."""

    def last_preflight(self) -> PreflightResult | None:
        """The last pre-flight call's result, if any."""


class HeartbeatReporter:
    """Sends heartbeats; `run()` until cancelled."""

    def __init__(self, controller: Controller, source: HealthSource,
                 send_on_stream: Callable[[dict[str, Any]], Awaitable[bool]],
                 every: float) -> None:
        self.controller = controller
        self.source = source
        self.send_on_stream = send_on_stream
        self.every = every
        self.counts: Counter[str] = Counter()
        self._now = asyncio.Event()  # a heartbeat should go at once
        self._sent_at: float | None = None  # of the heartbeat awaiting its answer on the stream
        self._rtt_ms: float | None = None  # the controller's answer time to a heartbeat
        self.cpu = CpuMeter()  # the machine's CPU since the previous heartbeat

    def report_now(self) -> None:
        """Send the next heartbeat at once (a pre-flight result is in)."""
        self._now.set()

    async def body(self, rtt_ms: float | None, interval: float) -> dict[str, Any]:
        """The health report the controller's monitoring receives (docs/monitoring.md),
        with figures over the last `interval` seconds."""
        body: dict[str, Any] = {
            "sent_at": datetime.now(UTC).isoformat(),
            "devices": {"camera": self.source.camera_present(),
                        "microphone": await self.source.microphone_present(),
                        # A headless agent plays nothing: the speaker is not its to check.
                        "speaker": True},
            "cpu_percent": self.cpu.percent(),
            "network": {"rtt_ms": rtt_ms},
            "agent_version": __version__,
        }
        joined = self.source.joined_conferences()
        if joined:
            conference = joined[0]
            figures = await self.source.call_figures(conference, interval)
            body["call"] = {"conference": conference, "source": "agent", **(figures or {})}
        preflight = self.source.last_preflight()
        if preflight is not None:
            body["test_call"] = preflight.to_json()
        return body

    async def run(self) -> None:
        """Report every `every` seconds (or at once when asked) until cancelled."""
        last_sent = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self.every)
            self._now.clear()
            now = time.monotonic()
            try:
                body = await self.body(self._rtt_ms, now - last_sent)
            except Exception:  # a bug in a probe must not end the reports for good
                log.exception("making a heartbeat failed")
                continue
            finally:
                last_sent = now
            try:
                await self._send(body)
            except UNREACHABLE as exc:
                log.warning("heartbeat not delivered: %s", describe(exc))

    async def _send(self, body: dict[str, Any]) -> None:
        sent_at = self._sent_at = time.monotonic()  # before: its answer may come at once
        if await self.send_on_stream({"type": "heartbeat", "body": body}):
            return
        self._sent_at = None
        status, detail = await self.controller.post_heartbeat(body)
        if status >= 400:
            self.refused(status == 429, f"HTTP {status} {detail}")
            return
        self._rtt_ms = round((time.monotonic() - sent_at) * 1000, 1)
        self.counts["heartbeats"] += 1

    def answered(self) -> None:
        """The controller took a heartbeat sent on the event stream."""
        if self._sent_at is not None:
            self._rtt_ms = round((time.monotonic() - self._sent_at) * 1000, 1)
            self._sent_at = None
        self.counts["heartbeats"] += 1

    def refused(self, too_soon: bool, detail: str) -> None:
        """The controller refused a heartbeat (`too_soon`: rate-limited)."""
        if too_soon and self.source.last_preflight() is not None:
            # Too soon after the last one (a pre-flight call just ended): again shortly,
            # so its result does not wait a whole interval.
            asyncio.get_running_loop().call_later(TOO_SOON_RETRY_SECONDS, self._now.set)
        else:
            log.warning("the controller refused a heartbeat: %s", detail)
