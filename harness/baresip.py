"""Run baresip (Debian's `baresip-core`, `baresip-ffmpeg`) as a headless SIP room system.

Each room gets a fresh configuration directory (`write_config`): SIP and RTP
on 127.0.0.1 only, no registration (`regint=0`), no STUN/ICE/TURN modules, and
no sound card: the microphone is `ausine` (a tone), the loudspeaker `aubridge`
(a device nobody reads, cheap; ALSA's `null` player spins a core), the camera
`fakevideo`. The room answers on its own (`answermode=auto`) one call at a
time (`call_max_calls 1`): a room already in a call answers 486 Busy Here,
which is how a busy room is made (`running_busy_room`: it first calls a
partner room of its own).

`running_baresip()` starts it, waits until its SIP port is bound, and always
stops it (SIGTERM, then SIGKILL after a bounded wait). `stop()`/`start()` let a
test take the room away and bring it back on the same address."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.netns import Namespace
from harness.priority import set_niceness
from harness.process_stop import stop_process
from harness.service_process import free_port

BARESIP = "baresip"
MODULES = Path("/usr/lib/baresip/modules")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def missing() -> str | None:
    """Why baresip cannot run here, or None."""
    if shutil.which(BARESIP) is None:
        return "`baresip` not installed (Debian package `baresip-core`)"
    if not (MODULES / "avcodec.so").exists():
        return "baresip's ffmpeg modules not installed (Debian package `baresip-ffmpeg`)"
    return None


def free_udp_port() -> int:
    """A port for a room's SIP (the namespace is the test's own: any port is free there,
    this only keeps two rooms of one test apart)."""
    return free_port()


@dataclass
class RoomConfig:
    """What one baresip room is: its SIP user, port, codecs and behaviour."""

    user: str
    sip_port: int
    audio_codecs: Sequence[str] = ("G722", "PCMU", "PCMA")
    video_codecs: Sequence[str] = ("VP8", "H264")
    # Send calls through this proxy (dial-in through kamailio), e.g. "sip:127.0.0.1:5060".
    outbound_proxy: str = ""
    # Commands run once started (e.g. "/dial sip:1001@127.0.0.1:5060").
    commands: Sequence[str] = field(default_factory=tuple)
    # The media tests' extras (tests/test_sip_media.py): the microphone's tone; a video
    # file as the camera (`avformat`; `fakevideo` is black); a directory where `sndfile`
    # dumps what the room decodes (`dump-*-dec.wav`) and sends; a TCP control port
    # (`ctrl_tcp`, in the namespace) for `snapshot_recv <png>` and `sndcode <keys>`.
    tone_hz: int = 440
    # A WAV file (48 kHz, 2 channels, s16) played as the microphone (`aufile`) instead of
    # the tone: the benchmark's rooms murmur as its quiet WebRTC sites do.
    microphone: Path | None = None
    camera: Path | None = None
    dump: Path | None = None
    control_port: int | None = None
    # Niceness of the room's process and session (`harness/priority.py`): a benchmark
    # runs its rooms, which stand for hardware elsewhere, behind the service it measures.
    nice: int = 0

    @property
    def uri(self) -> str:
        """Where the room is called directly."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"


def write_config(directory: Path, room: RoomConfig) -> None:
    """Write baresip's `config` and `accounts` for `room` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    rtp = free_port()
    # baresip's account filter keeps only the first codec of a name: for H.264 that is
    # packetization mode 0, which refuses mode 1. An H.264-only room loads no VP8 instead
    # of filtering; a room without video codecs loads no video codec at all.
    video_filter = [] if list(room.video_codecs) == ["H264"] else list(room.video_codecs)
    video = ["vp8.so"] if "VP8" in room.video_codecs else []
    video += ["avcodec.so"] if "H264" in room.video_codecs else []
    extras = [*(["avformat.so"] if room.camera else []),
              *(["aufile.so"] if room.microphone else []),
              *(["sndfile.so"] if room.dump else []),
              *(["snapshot.so", "ctrl_tcp.so"] if room.control_port else [])]
    modules = ["g711.so", "g722.so", "opus.so", *video, "ausine.so", "aubridge.so",
               "fakevideo.so", "srtp.so", *extras, "menu.so"]
    lines = [
        "poll_method epoll",
        f"sip_listen 127.0.0.1:{room.sip_port}",
        "net_interface 127.0.0.1",
        "call_max_calls 1",
        # A call whose media stops (the gateway died without a BYE) ends after 3 s, as a
        # room system's media timeout would end it (later): the room is free for a redial.
        "rtp_timeout 3",
        "audio_player aubridge,nil",
        f"audio_source aufile,{room.microphone}" if room.microphone
        else f"audio_source ausine,{room.tone_hz}",
        "audio_alert aubridge,nil",
        "ausrc_srate 48000",
        "ausrc_channels 2",
        f"video_source avformat,{room.camera}" if room.camera else "video_source fakevideo,nil",
        "video_display",
        "video_size 320x240",
        "video_fps 10",
        "video_bitrate 200000",
        f"rtp_ports {rtp}-{rtp + 40}",
        "rtcp_mux yes",
        "jitter_buffer_delay 1-10",
        f"module_path {MODULES}",
        *(f"module {m}" for m in modules if not m.startswith("menu")),
        "module_app account.so",
        "module_app menu.so",
    ]
    if room.dump:
        room.dump.mkdir(parents=True, exist_ok=True)
        lines.append(f"snd_path {room.dump}")
    if room.control_port:
        # On every address of the namespace (its loopback and its end of the link only),
        # so the test reaches it from outside at `netns.there`.
        lines.append(f"ctrl_tcp_listen 0.0.0.0:{room.control_port}")
    (directory / "config").write_text("\n".join(lines) + "\n")
    # A bare "G722" reads as G722/8000/1, which baresip does not have.
    audio = [{"G722": "G722/16000/1"}.get(c, c) for c in room.audio_codecs]
    params = ["regint=0", "answermode=auto", f"audio_codecs={','.join(audio)}"]
    if video_filter:
        params.append(f"video_codecs={','.join(video_filter)}")
    if room.outbound_proxy:
        params.append(f'outbound="{room.outbound_proxy}"')
    account = f"<sip:{room.user}@127.0.0.1:{room.sip_port}>;" + ";".join(params)
    (directory / "accounts").write_text(account + "\n")
    (directory / "contacts").write_text("")
    (directory / "current_contact").write_text("")


@dataclass
class Baresip:
    """A baresip room: its configuration, process (None while stopped) and log."""

    room: RoomConfig
    directory: Path
    log: Path
    netns: Namespace
    process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return self.room.uri

    def start(self, *, wait_for: bytes = b"baresip is ready") -> None:
        """Start baresip and wait until its log says `wait_for`."""
        if self.process is not None and self.process.poll() is None:
            return
        command = [*self.netns.exec_prefix, BARESIP, "-4", "-f", str(self.directory)]
        for line in self.room.commands:
            command += ["-e", line]
        start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            nice = self.room.nice
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=bool(nice),
                preexec_fn=(lambda: set_niceness(nice)) if nice else None)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"baresip exited: {self.log.read_text()[-2000:]}")
            if wait_for in self.log.read_bytes()[start:]:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"baresip did not say {wait_for!r}: {self.log.read_text()[-2000:]}")

    async def command(self, command: str, params: str = "") -> dict[str, object]:
        """Run one command through `ctrl_tcp` (netstring JSON) and return its response
        (`RoomConfig.control_port` must be set)."""
        assert self.room.control_port, "this room has no control port"
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.netns.there, self.room.control_port), 5)
        try:
            body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
            writer.write(str(len(body)).encode() + b":" + body + b",")
            await writer.drain()
            while True:  # events may come first; the response says so
                length = int((await asyncio.wait_for(reader.readuntil(b":"), 10))[:-1])
                message = json.loads(await reader.readexactly(length))
                await reader.readexactly(1)  # the netstring's ","
                if message.get("response"):
                    return dict(message)
        finally:
            writer.close()

    def decoded_wavs(self) -> list[Path]:
        """`sndfile`'s dumps of what the room decoded (its loudspeaker), oldest first."""
        return sorted(self.room.dump.glob("dump-*-dec.wav")) if self.room.dump else []

    def stop(self) -> None:
        """Stop baresip (SIGTERM, then SIGKILL); idempotent."""
        stop_process(self.process)

    def kill(self) -> None:
        """Kill baresip at once (a room switched off: no BYE is sent)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)


@contextlib.contextmanager
def running_baresip(directory: Path, room: RoomConfig, netns: Namespace) -> Iterator[Baresip]:
    """A started baresip room in `netns` configured in `directory`, stopped on exit."""
    write_config(directory, room)
    baresip = Baresip(room, directory, directory / "baresip.log", netns)
    try:
        baresip.start()
        yield baresip
    finally:
        baresip.stop()


@contextlib.contextmanager
def running_busy_room(directory: Path, user: str, netns: Namespace) -> Iterator[Baresip]:
    """A room that answers every call with 486 Busy Here: it is in a call with a partner
    room already (baresip takes `call_max_calls` calls at a time)."""
    partner = RoomConfig(f"{user}-partner", free_udp_port())
    with running_baresip(directory / "partner", partner, netns):
        room = RoomConfig(user, free_udp_port(), commands=(f"/dial {partner.uri}",))
        write_config(directory / "room", room)
        baresip = Baresip(room, directory / "room", directory / "room" / "baresip.log", netns)
        try:
            baresip.start(wait_for=b"Call established")
            yield baresip
        finally:
            baresip.stop()
