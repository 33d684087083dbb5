"""Run kamailio (Debian's `kamailio`) with the project's proxy configuration, in a
network namespace beside Janus and the rooms.

The configuration is `configs/kamailio/kamailio.cfg` with its site lines rewritten
(`write_config`): it listens on the namespace's 127.0.0.1 (Janus and the rooms) and
on the link's address `there` (the bridge's side), and the bridge's SIP user is the
test's. `running_kamailio()` starts it in the foreground, waits until it answers
an OPTIONS, and always stops it (SIGTERM, then SIGKILL after a bounded wait)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.netns import Namespace
from harness.process_stop import stop_process
from vcbridge.core.settings import PROJECT_ROOT

KAMAILIO = "kamailio"
CONFIG = PROJECT_ROOT / "configs" / "kamailio" / "kamailio.cfg"
PORT = 5060
START_TIMEOUT_S = 10.0


def missing() -> str | None:
    """Why kamailio cannot run here, or None."""
    if shutil.which(KAMAILIO) is None:
        return "`kamailio` not installed (Debian package `kamailio`)"
    return None


def write_config(directory: Path, netns: Namespace, bridge_user: str) -> Path:
    """The project's configuration for this namespace, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in CONFIG.read_text().splitlines():
        if line.startswith('#!substdef "!BRIDGE_USER!'):
            line = f'#!substdef "!BRIDGE_USER!{bridge_user}!g"'
        elif line.startswith("listen="):
            line = f"listen=udp:127.0.0.1:{PORT}\nlisten=udp:{netns.there}:{PORT}"
        lines.append(line)
    path = directory / "kamailio.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Kamailio:
    """A running kamailio: where the bridge reaches it, its process and log."""

    proxy_here: str  # the proxy as the bridge (outside the namespace) addresses it
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Stop kamailio; idempotent."""
        stop_process(self.process)


def _answers(host: str, local: str) -> bool:
    """True when kamailio answers an OPTIONS to itself at `host` (sent from `local`)."""
    request = (f"OPTIONS sip:{host}:{PORT} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {host}:9;branch=z9hG4bK-probe{time.monotonic_ns()}\r\n"
               "Max-Forwards: 5\r\nFrom: <sip:probe@invalid>;tag=p\r\n"
               f"To: <sip:{host}>\r\nCall-ID: probe-{time.monotonic_ns()}\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.3)
        probe.bind((local, 0))
        # Kamailio answers to the Via's address and port: name ours.
        port = probe.getsockname()[1]
        probe.sendto(request.replace(f"{host}:9;", f"{local}:{port};").encode(), (host, PORT))
        try:
            return probe.recv(2048).startswith(b"SIP/2.0 200")
        except OSError:
            return False


@contextlib.contextmanager
def running_kamailio(directory: Path, netns: Namespace, bridge_user: str) -> Iterator[Kamailio]:
    """kamailio in `netns` with the project's configuration, stopped on exit."""
    config = write_config(directory, netns, bridge_user)
    log = directory / "kamailio.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*netns.exec_prefix, KAMAILIO, "-DD", "-E", "-f", str(config), "-Y",
             str(directory), "-P", str(directory / "kamailio.pid")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    kamailio = Kamailio(f"sip:{netns.there}:{PORT}", process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(netns.there, netns.here):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kamailio did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield kamailio
    finally:
        kamailio.stop()
