"""The hostile site of the conference benchmark (`bench/conference.py --hostile`).

Started by `bench/conference.py`, never by hand (`python -m bench.hostile_site
CONFIG.json`). It is one more booked endpoint of the conference, with a valid
agent token, that sends no media: during the steady part of the run it
attacks the room's signaling, as issue 11 found a booked site could, while
the harness measures what the honest sites receive. Rounds of, in turn:

- `offer_1000_lines`: a video offer of 1,000 media lines (~115 KB; before
  the fix aiortc parsed each for ~0.9 s of the bridge's event loop), on a
  fresh connection, since a refused offer closes the socket;
- `offer_no_fingerprint`: an audio offer without a DTLS fingerprint, on a
  fresh connection;
- `junk_400kb`: 19 `floor.request` messages with a 400 KB junk field each, on
  one connection;
- `floor_flood`: up to 1,000 `floor.request`/`floor.cancel` at about 1,000 a
  second on one connection (until the bridge closes it);
- `reconnect_loop`: 10 connections opened and closed at once,

then a short pause (`pause`), until the harness's `attack` command's seconds
are over, `max_connections` connection attempts were made, or the harness
says stop: every loop is bounded. Each outcome is counted per attack: the
error codes the bridge sent on the socket, `http_<status>` for a connection
refused before the upgrade (429 `rate_limited` once the site is over
`signaling_joins_per_minute`), `answered` (an offer the bridge answered: the
defence failed), `closed` (closed without an error), `timeout`, `send_failed`
(the socket was closed under the sender: the rest of a flood not sent).

Protocol with the harness, JSON lines as `bench/load_sites.py`: stdout
`{"event": "ready"}` once the bodies are built, `{"event": "result", ...}` at
the end; stdin `{"cmd": "attack", "seconds": S}` and `{"cmd": "stop"}`. Only
loopback: host candidates restricted to 127.0.0.1, no ICE servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.load_sites import emit, read_commands
from bridge.ice_policy import restrict_host_addresses
from harness.hostile_offers import aiortc_offer, thousand_line_offer, without_fingerprint

log = logging.getLogger("bench.hostile_site")

ATTACKS = ("offer_1000_lines", "offer_no_fingerprint", "junk_400kb", "floor_flood",
           "reconnect_loop")
JUNK_MESSAGES, JUNK_BYTES = 19, 400_000  # the finding: 19 x 400 KB
FLOOD_MESSAGES, FLOOD_BATCH, FLOOD_BATCH_S = 1000, 10, 0.01  # about 1,000 a second
RECONNECTS = 10
SOCKET_TIMEOUT = 15.0  # per connection: an answer, the error, or the close


async def offer_bodies() -> dict[str, str]:
    """The two offers, as signaling messages (harness/hostile_offers.py, as the tests)."""
    thousand = await thousand_line_offer()
    unsigned = without_fingerprint(await aiortc_offer("audio"))
    return {
        "offer_1000_lines": json.dumps({"type": "offer", "pc": "video", "sdp": thousand}),
        "offer_no_fingerprint": json.dumps({"type": "offer", "pc": "audio", "sdp": unsigned}),
    }


class Attacker:
    """Runs the rounds and counts what the bridge answered."""

    def __init__(self, config: dict[str, Any], bodies: dict[str, str],
                 session: aiohttp.ClientSession) -> None:
        self.url = (f"{config['base_url']}/api/v1/conferences/{config['conference_id']}"
                    "/signal")
        self.token = str(config["token"])
        self.pause = float(config.get("pause", 0.1))
        self.max_connections = int(config.get("max_connections", 3000))
        self.bodies = bodies
        self.session = session
        self.outcomes: dict[str, Counter[str]] = {name: Counter() for name in ATTACKS}
        self.runs: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()
        self.bytes_sent = 0
        self.connections = 0
        self.rounds = 0
        self.started: float | None = None
        self.timeline: list[tuple[str, float, float]] = []  # (attack, start, end), time.time()
        self.ended: float | None = None

    async def connect(self, attack: str) -> aiohttp.ClientWebSocketResponse | None:
        """A site connection that got its `joined`; None (counted) when refused."""
        self.connections += 1
        try:
            ws = await self.session.ws_connect(
                self.url, headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientWSTimeout(ws_close=5), max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            self.outcomes[attack][f"http_{exc.status}"] += 1
            return None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.outcomes[attack][f"connect_error:{type(exc).__name__}"] += 1
            return None
        try:
            first = await ws.receive_json(timeout=SOCKET_TIMEOUT)
        except (TypeError, ValueError, TimeoutError):
            first = {}
        if first.get("type") != "joined":
            self.outcomes[attack]["no_joined"] += 1
            await ws.close()
            return None
        return ws

    async def send(self, ws: aiohttp.ClientWebSocketResponse, text: str, kind: str) -> bool:
        if ws.closed:
            return False
        try:
            await ws.send_str(text)
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return False
        self.messages[kind] += 1
        self.bytes_sent += len(text)
        return True

    async def outcome(self, ws: aiohttp.ClientWebSocketResponse, attack: str) -> None:
        """Count the error codes (or an answer) until the bridge closes the socket."""
        seen = False
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    body = json.loads(message.data)
                    if body.get("type") == "error":
                        self.outcomes[attack][str(body.get("error", {}).get("code"))] += 1
                        seen = True
                    elif body.get("type") == "answer":
                        self.outcomes[attack]["answered"] += 1
                        seen = True
                        await ws.close()
        except TimeoutError:
            self.outcomes[attack]["timeout"] += 1
            seen = True
            await ws.close()
        if not seen:
            self.outcomes[attack]["closed"] += 1

    async def offer(self, attack: str) -> None:
        ws = await self.connect(attack)
        if ws is None:
            return
        if not await self.send(ws, self.bodies[attack], "offer"):
            self.outcomes[attack]["send_failed"] += 1
        await self.outcome(ws, attack)

    async def junk(self) -> None:
        ws = await self.connect("junk_400kb")
        if ws is None:
            return
        junk = json.dumps({"type": "floor.request", "junk": "x" * JUNK_BYTES})
        for _ in range(JUNK_MESSAGES):
            if not await self.send(ws, junk, "junk"):
                self.outcomes["junk_400kb"]["send_failed"] += 1
                break
        # The errors come one per message; then leave (the socket stays open for them).
        expected = JUNK_MESSAGES
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                while expected > 0:
                    message = await ws.receive()
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    body = json.loads(message.data)
                    if body.get("type") == "error":
                        self.outcomes["junk_400kb"][str(body["error"].get("code"))] += 1
                        expected -= 1
        except TimeoutError:
            self.outcomes["junk_400kb"]["timeout"] += 1
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await ws.send_json({"type": "leave"})
        await ws.close()

    async def flood(self) -> None:
        ws = await self.connect("floor_flood")
        if ws is None:
            return
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for index in range(FLOOD_MESSAGES):
            kind = "floor.request" if index % 2 == 0 else "floor.cancel"
            if not await self.send(ws, json.dumps({"type": kind}), "flood"):
                self.outcomes["floor_flood"]["send_failed"] += 1
                break
            if index % FLOOD_BATCH == FLOOD_BATCH - 1:
                next_at += FLOOD_BATCH_S
                await asyncio.sleep(max(0.0, next_at - loop.time()))
        await self.outcome(ws, "floor_flood")

    async def reconnect(self) -> None:
        for _ in range(RECONNECTS):
            ws = await self.connect("reconnect_loop")
            if ws is not None:
                self.outcomes["reconnect_loop"]["joined"] += 1
                await ws.close()

    async def run(self, seconds: float) -> None:
        steps: dict[str, Callable[[], Awaitable[None]]] = {
            "offer_1000_lines": lambda: self.offer("offer_1000_lines"),
            "offer_no_fingerprint": lambda: self.offer("offer_no_fingerprint"),
            "junk_400kb": self.junk, "floor_flood": self.flood, "reconnect_loop": self.reconnect,
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self.started = time.time()
        try:
            while loop.time() < deadline and self.connections < self.max_connections:
                for name, step in steps.items():
                    if loop.time() >= deadline or self.connections >= self.max_connections:
                        break
                    self.runs[name] += 1
                    began = time.time()
                    try:
                        await asyncio.wait_for(step(), max(0.1, deadline - loop.time()) + 5)
                    except TimeoutError:
                        self.outcomes[name]["timeout"] += 1
                    finally:
                        self.timeline.append((name, began, time.time()))
                    await asyncio.sleep(self.pause)
                self.rounds += 1
        finally:
            self.ended = time.time()

    def result(self) -> dict[str, Any]:
        return {"started": self.started, "ended": self.ended, "rounds": self.rounds,
                "connections": self.connections, "bytes_sent": self.bytes_sent,
                "messages_sent": dict(self.messages), "timeline": self.timeline,
                "attacks": {name: {"runs": self.runs[name], "outcomes": dict(self.outcomes[name])}
                            for name in ATTACKS}}


async def run(config: dict[str, Any]) -> dict[str, Any]:
    restrict_host_addresses(["127.0.0.1"])
    bodies = await offer_bodies()
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reader = asyncio.create_task(read_commands(commands))
    attack: asyncio.Task[None] | None = None
    async with aiohttp.ClientSession() as session:
        attacker = Attacker(config, bodies, session)
        emit({"event": "ready", "pid": os.getpid()})
        deadline = time.monotonic() + float(config["max_seconds"])
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    command = await asyncio.wait_for(commands.get(), remaining)
                except TimeoutError:
                    break
                if command.get("cmd") == "stop":
                    break
                if command.get("cmd") == "attack" and attack is None:
                    attack = asyncio.create_task(attacker.run(float(command["seconds"])))
        finally:
            reader.cancel()
            if attack is not None:
                attack.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await attack
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"event": "result", "pid": os.getpid(), **attacker.result(),
            "cpu_seconds": usage.ru_utime + usage.ru_stime}


def main() -> int:
    parser = argparse.ArgumentParser(description="the hostile site (started by conference.py)")
    parser.add_argument("config", help="JSON file written by bench/conference.py")
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s hostile[{os.getpid()}] %(levelname)s %(message)s")
    emit(asyncio.run(run(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
