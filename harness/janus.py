"""Run Janus (Debian's `janus`) with only its SIP plugin and HTTP API, in a network namespace.

The configuration directory is written fresh for each run (`write_config`), so
nothing depends on /etc/janus: every plugin but `janus.plugin.sip`, every
transport but plain HTTP, the admin API, event handlers and loggers are off.

Why a namespace: Janus never gathers ICE candidates on a loopback interface
(its `ice.c` skips IFF_LOOPBACK even when `ice_enforce_list` names it), and
with no address chosen libnice gathers on every interface of the machine. In
a namespace made by the test (`harness/netns.Namespace`) its one other
interface is the veth end `there`: the HTTP API and ICE live there
(`ice_enforce_list` = that device), no STUN server is set, and the SIP plugin
talks to the rooms (baresip, kamailio, in the same namespace) on the
namespace's own 127.0.0.1. The bridge reaches Janus at `there` from `here`.

`running_janus()` starts it, waits until its API answers `info`, and always
stops it (SIGTERM, then SIGKILL after a bounded wait)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.netns import Namespace
from harness.process_stop import stop_process
from harness.service_process import free_port

JANUS = "janus"
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
START_TIMEOUT_S = 15.0


def missing() -> str | None:
    """Why Janus cannot run here, or None."""
    if shutil.which(JANUS) is None or not (LIB / "plugins" / "libjanus_sip.so").exists():
        return "`janus` not installed (Debian package `janus`)"
    return None


def _disabled(folder: str, keep: str) -> str:
    names = sorted(p.name for p in (LIB / folder).glob("*.so") if p.name != keep)
    return ",".join(names)


def write_config(directory: Path, http_port: int, netns: Namespace, *,
                 rtp_ports: tuple[int, int] = (30000, 30999), sip_timeout_ms: int = 6000,
                 session_timeout_s: int = 60) -> Path:
    """Write a minimal Janus configuration into `directory`; returns the main file.

    `sip_timeout_ms` is the SIP plugin's `sip_timer_t1x64`: how long an INVITE
    to a silent address waits before it fails with 408 (32 s by default; the
    tests shorten it)."""
    directory.mkdir(parents=True, exist_ok=True)
    main = directory / "janus.jcfg"
    main.write_text(f"""general: {{
    configs_folder = "{directory}"
    plugins_folder = "{LIB / 'plugins'}"
    transports_folder = "{LIB / 'transports'}"
    events_folder = "{LIB / 'events'}"
    loggers_folder = "{LIB / 'loggers'}"
    debug_level = 4
    debug_timestamps = true
    session_timeout = {session_timeout_s}
    server_name = "vcbridge-test"
}}
media: {{
    rtp_port_range = "{rtp_ports[0]}-{rtp_ports[1]}"
}}
nat: {{
    ice_enforce_list = "{netns.there_dev}"
    nice_debug = false
}}
plugins: {{
    disable = "{_disabled('plugins', 'libjanus_sip.so')}"
}}
transports: {{
    disable = "{_disabled('transports', 'libjanus_http.so')}"
}}
loggers: {{
    disable = "{_disabled('loggers', '-')}"
}}
events: {{
    broadcast = false
    disable = "{_disabled('events', '-')}"
}}
""")
    (directory / "janus.transport.http.jcfg").write_text(f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {http_port}
    ip = "{netns.there}"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
""")
    (directory / "janus.plugin.sip.jcfg").write_text(f"""general: {{
    local_ip = "127.0.0.1"
    local_media_ip = "127.0.0.1"
    sdp_ip = "127.0.0.1"
    keepalive_interval = 0
    register_ttl = 300
    rtp_port_range = "{rtp_ports[0] + 500}-{rtp_ports[1]}"
    sip_timer_t1x64 = {sip_timeout_ms}
    user_agent = "vcbridge-janus"
    events = false
}}
""")
    return main


@dataclass
class Janus:
    """A running Janus: its API URL, process and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    directory: Path
    netns: Namespace

    def info(self) -> dict[str, object] | None:
        """Janus's `info` answer, or None while it does not answer."""
        try:
            with urllib.request.urlopen(self.url + "/info", timeout=2) as response:
                return dict(json.loads(response.read()))
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop Janus (SIGTERM, then SIGKILL); idempotent."""
        stop_process(self.process)

    def restart(self) -> None:
        """Stop and start it again on the same port and configuration (its sessions are lost)."""
        self.stop()
        self.process = _spawn(self.directory, self.log, self.netns)
        _wait_ready(self)


def _spawn(directory: Path, log: Path, netns: Namespace) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*netns.exec_prefix, JANUS, "-C", str(directory / "janus.jcfg"), "-F",
             str(directory), "-o"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_ready(janus: Janus) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if janus.process.poll() is not None:
            raise RuntimeError(f"janus exited: {janus.log.read_text()[-2000:]}")
        info = janus.info()
        if info and "janus.plugin.sip" in dict(info.get("plugins", {}) or {}):  # type: ignore[call-overload]
            return
        time.sleep(0.1)
    janus.stop()
    raise RuntimeError(f"janus did not answer in {START_TIMEOUT_S} s: "
                       f"{janus.log.read_text()[-2000:]}")


@contextlib.contextmanager
def running_janus(directory: Path, netns: Namespace, **config: object) -> Iterator[Janus]:
    """Janus in `netns` with a fresh configuration in `directory`, stopped on exit."""
    port = free_port()
    write_config(directory, port, netns, **config)  # type: ignore[arg-type]
    log = directory / "janus.log"
    janus = Janus(f"http://{netns.there}:{port}/janus", _spawn(directory, log, netns), log,
                  directory, netns)
    try:
        _wait_ready(janus)
        yield janus
    finally:
        janus.stop()
