"""A real Janus (SIP plugin) and a real baresip room system for the SIP media tests.

Janus runs here: its WebRTC side on loopback (the bridge's peer connection), its
SIP side on the bridge end of a veth link into a network namespace
(`harness.netns.Namespace`), where baresip runs headless as the room system:
a sine tone as its microphone (`ausine`), a fake camera (`fakevideo`), no sound
card (`aubridge`: nothing plays, nothing spins), its decoded audio dumped to WAV
files (`sndfile`), its received picture saved on request (`snapshot`, through
`ctrl_tcp`). Every file lives in the test's temporary directory and every process
is killed when the context ends.

A minimal client of Janus's HTTP API drives a call here (session, SIP plugin,
guest registration, call, accepted event, hangup); the product's own client is the
gateway's (`bridge/sip/janus_gateway.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from harness.netns import Namespace

JANUS_LIBS = Path("/usr/lib/x86_64-linux-gnu/janus")


def missing() -> str | None:
    """Why the SIP rig cannot run here, or None."""
    from harness.netns import missing as netns_missing

    for program, package in (("janus", "janus"), ("baresip", "baresip-core")):
        if shutil.which(program) is None:
            return f"`{program}` not installed (Debian package `{package}`)"
    if not (JANUS_LIBS / "plugins" / "libjanus_sip.so").exists():
        return "Janus's SIP plugin is missing (Debian package `janus`)"
    return netns_missing()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Janus:
    """A running Janus; `url` is its HTTP API."""

    url: str
    log: Path


@contextlib.contextmanager
def janus_running(workdir: Path, sip_ip: str) -> Iterator[Janus]:
    """Janus with only the SIP plugin and the HTTP transport, ICE on loopback only."""
    base = workdir / "janus"
    for folder in ("plugins", "transports", "events", "loggers", "conf"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    (base / "plugins" / "libjanus_sip.so").symlink_to(JANUS_LIBS / "plugins" / "libjanus_sip.so")
    (base / "transports" / "libjanus_http.so").symlink_to(
        JANUS_LIBS / "transports" / "libjanus_http.so")
    port = free_port()
    rtp = 20000 + (os.getpid() * 7) % 20000
    conf = base / "conf"
    (conf / "janus.jcfg").write_text(f"""general: {{
  configs_folder = "{conf}"
  plugins_folder = "{base / 'plugins'}"
  transports_folder = "{base / 'transports'}"
  events_folder = "{base / 'events'}"
  loggers_folder = "{base / 'loggers'}"
  debug_level = 4
  admin_secret = "{secrets.token_hex(8)}"
  interface = "127.0.0.1"
  session_timeout = 60
}}
media: {{ rtp_port_range = "{rtp}-{rtp + 199}" }}
nat: {{ ice_enforce_list = "{sip_ip}" ignore_mdns = true }}
plugins: {{}}
transports: {{}}
events: {{ broadcast = false }}
""")
    (conf / "janus.transport.http.jcfg").write_text(
        f'general: {{ base_path = "/janus" http = true port = {port} ip = "127.0.0.1" '
        'https = false }\nadmin: { admin_http = false }\ncors: {}\ncertificates: {}\n')
    (conf / "janus.plugin.sip.jcfg").write_text(
        f'general: {{ local_ip = "{sip_ip}" sdp_ip = "{sip_ip}" keepalive_interval = 0 '
        f'behind_nat = false register_ttl = 3600 rtp_port_range = "{rtp + 200}-{rtp + 399}" '
        'sip_timer_t1x64 = 32000 }\n')
    log = workdir / "janus.log"
    with log.open("wb") as out:
        command = [shutil.which("janus") or "janus", "-F", str(conf),
                   "-C", str(conf / "janus.jcfg")]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"janus did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield Janus(f"http://127.0.0.1:{port}/janus", log)
    finally:
        _stop(process)


@dataclass
class Baresip:
    """A running baresip room system in a namespace."""

    uri: str
    dump: Path  # its sndfile dumps: dump-<peer>-dec.wav is what it decoded (played)
    ctrl_port: int
    namespace: Namespace
    log: Path

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        """Send one ctrl_tcp command (netstring JSON) and return its response."""
        reader, writer = await asyncio.open_connection(self.namespace.there, self.ctrl_port)
        try:
            body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
            writer.write(str(len(body)).encode() + b":" + body + b",")
            await writer.drain()
            while True:
                length = int((await reader.readuntil(b":"))[:-1])
                message = json.loads(await reader.readexactly(length))
                await reader.readexactly(1)
                if message.get("response"):
                    return dict(message)
        finally:
            writer.close()

    def decoded_wavs(self) -> list[Path]:
        return sorted(self.dump.glob("dump-*-dec.wav"))


@contextlib.contextmanager
def baresip_running(workdir: Path, namespace: Namespace, *, audio_codecs: str,
                    video_codecs: str, tone_hz: int = 660, camera: Path | None = None
                    ) -> Iterator[Baresip]:
    """baresip listening for SIP on the namespace's end, auto-answering, a sine tone and
    a fake camera as its sources."""
    home = workdir / "baresip"
    dump = home / "dump"
    dump.mkdir(parents=True, exist_ok=True)
    ctrl = 4444
    # An account's `video_codecs=H264` keeps only baresip's first H.264 variant
    # (packetization mode 0): an H.264-only room is made by not loading VP8 instead.
    # No `video_codecs` at all: an audio-only room (no video codec module loaded).
    h264_only = video_codecs in ("H264", "")
    video_modules = ["fakevideo", "avcodec", "avformat"] if video_codecs else []
    modules = ["g711", "g722", "opus", "aubridge", "ausine", "sndfile", *video_modules,
               *([] if h264_only else ["vp8"]), "snapshot"]
    (home / "config").write_text("\n".join([
        "poll_method epoll",
        f"sip_listen {namespace.there}:5060",
        "audio_player aubridge,nil", f"audio_source ausine,{tone_hz}",
        "audio_alert aubridge,nil",
        "ausrc_srate 48000", "auplay_srate 48000", "ausrc_channels 2", "auplay_channels 2",
        *([f"video_source avformat,{camera}" if camera else "video_source fakevideo,nil",
           "video_display fakevideo,nil"] if video_codecs else []),
        "video_size 320x240", "video_bitrate 300000", "video_fps 15",
        "rtcp_mux no", "jitter_buffer_delay 1-10",
        "module_path /usr/lib/baresip/modules",
        *[f"module {m}.so" for m in modules],
        "module_app account.so", "module_app menu.so", "module ctrl_tcp.so",
        f"ctrl_tcp_listen {namespace.there}:{ctrl}",
        f"snd_path {dump}", ""]))
    uri = f"sip:room@{namespace.there}:5060"
    # baresip reads a bare "G722" as G722/8000/1, which it does not have.
    audio_codecs = ",".join({"G722": "G722/16000/1", "opus": "opus/48000/2"}.get(c, c)
                            for c in audio_codecs.split(","))
    (home / "accounts").write_text(
        f"<{uri}>;regint=0;answermode=auto;audio_codecs={audio_codecs}"
        + ("" if h264_only else f";video_codecs={video_codecs}") + "\n")
    log = workdir / "baresip.log"
    with log.open("wb") as out:
        # VCBRIDGE_SIP_TRACE=1: baresip logs its SIP messages (when a test needs looking into).
        trace = ["-s"] if os.environ.get("VCBRIDGE_SIP_TRACE") == "1" else []
        process = subprocess.Popen([*namespace.exec_prefix, "baresip", *trace, "-f", str(home)],
                                   stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while b"baresip is ready" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"baresip did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield Baresip(uri, dump, ctrl, namespace, log)
    finally:
        _stop(process)


@dataclass
class JanusCall:
    """One SIP call through Janus's SIP plugin (a session, one handle)."""

    http: aiohttp.ClientSession
    url: str
    session: int = 0
    handle: int = 0
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _poller: asyncio.Task[None] | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"transaction": secrets.token_hex(6), **body}
        async with self.http.post(self.url + path, json=body) as response:
            reply: dict[str, Any] = await response.json(content_type=None)
        if reply.get("janus") == "error":
            raise RuntimeError(f"janus error: {reply}")
        return reply

    async def start(self) -> None:
        self.session = (await self._post("", {"janus": "create"}))["data"]["id"]
        self.handle = (await self._post(f"/{self.session}", {
            "janus": "attach", "plugin": "janus.plugin.sip"}))["data"]["id"]
        self._poller = asyncio.get_running_loop().create_task(self._poll())
        await self.message({"request": "register", "type": "guest",
                            "username": "sip:bridge@127.0.0.1"})
        await self.wait_event("registered")

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with self.http.get(f"{self.url}/{self.session}?maxev=10",
                                         timeout=aiohttp.ClientTimeout(total=40)) as response:
                    reply = await response.json(content_type=None)
                for event in reply if isinstance(reply, list) else [reply]:
                    await self.events.put(event)

    async def message(self, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> None:
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        await self._post(f"/{self.session}/{self.handle}", request)

    async def wait_event(self, name: str, timeout: float = 15) -> dict[str, Any]:
        """The next plugin event whose result.event is `name` (raises on a SIP error)."""
        async def wait() -> dict[str, Any]:
            while True:
                event = await self.events.get()
                data = event.get("plugindata", {}).get("data", {})
                result = data.get("result", {})
                failed = data.get("error") or result.get("event") in (
                    "hangup", "registration_failed")
                if failed and result.get("event") != name:
                    raise RuntimeError(f"janus: {event}")
                if result.get("event") == name:
                    return dict(event)
        return await asyncio.wait_for(wait(), timeout)

    async def call(self, uri: str, offer_sdp: str) -> str:
        await self.message({"request": "call", "uri": uri},
                           {"type": "offer", "sdp": offer_sdp, "trickle": False})
        event = await self.wait_event("accepted")
        return str(event["jsep"]["sdp"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.message({"request": "hangup"})
        with contextlib.suppress(Exception):
            await self._post(f"/{self.session}", {"janus": "destroy"})
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


@contextlib.asynccontextmanager
async def janus_call(url: str) -> AsyncIterator[JanusCall]:
    async with aiohttp.ClientSession() as http:
        call = JanusCall(http, url)
        await call.start()
        try:
            yield call
        finally:
            await call.close()


def wav_tone_energy(path: Path, frequency: float, seconds: float = 2.0) -> float:
    """Share of the energy of the last `seconds` of a 16-bit WAV at `frequency` (±20 Hz).

    Read by hand: while baresip still writes the file its chunk sizes are not final, so
    the samples are whatever follows the data chunk's header."""
    raw = path.read_bytes()
    fmt, data = raw.find(b"fmt "), raw.find(b"data")
    if fmt < 0 or data < 0 or len(raw) < data + 8:
        return 0.0
    channels = int.from_bytes(raw[fmt + 10:fmt + 12], "little") or 1
    rate = int.from_bytes(raw[fmt + 12:fmt + 16], "little")
    body = raw[data + 8:]
    samples = np.frombuffer(body[:len(body) // 2 * 2], dtype=np.int16)[::channels]
    samples = samples[-int(rate * seconds):].astype(np.float64)
    if not rate or len(samples) < rate // 10:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    total = float(spectrum[freqs > 50].sum())
    band = float(spectrum[(freqs > frequency - 20) & (freqs < frequency + 20)].sum())
    return band / total if total else 0.0
