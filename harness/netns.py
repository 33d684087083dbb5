"""A district's network for tests and benchmarks: a network namespace joined to this one
by a veth pair, and ways to spoil the link between them.

The site's side runs in the namespace (`Namespace.exec_prefix`), the bridge's side here,
listening on `here`; nothing is sent anywhere else. This kernel has no netem, so the
impairments are built from what every kernel has:

- `black(True)`: every packet vanishes, both ways (a queue of length 0 on each end);
- `lose(0.05)`: a random 5 % of the packets are dropped, both ways, as they arrive at
  each end (iptables' `statistic` match, on the link's interface only: dropping where
  packets leave would hand the sending socket an error, which a real line never does);
- `limit(200)`: each direction limited to 200 kbit/s by a token bucket (`tbf`), the
  excess dropped after 200 ms of queue, as on a thin WAN link.

Needs root (CAP_NET_ADMIN): `ip`, `tc` (iproute2) and `iptables`."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

TOOLS = {"ip": "iproute2", "tc": "iproute2", "iptables": "iptables"}


def run(*command: str) -> None:
    """Run a fixed administration command; raise with its message when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout,
                                            done.stderr)


def missing() -> str | None:
    """Why namespaces cannot be made here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, tc); CI runs as root"
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"`{tool}` not installed (Debian package `{package}`)"
    return None


class Namespace:
    """A namespace `vcb-<tag>-<pid>` with a veth link: `here` in this namespace, `there`
    in it, a /30 of 10.`net`.x.y chosen from the process id (two runs do not collide)."""

    def __init__(self, tag: str, net: int = 231) -> None:
        pid = os.getpid()
        self.name = f"vcb-{tag}-{pid}"
        self.here_dev, self.there_dev = f"vc{tag[:3]}{pid % 100000}a", f"vc{tag[:3]}{pid % 100000}b"
        block = pid % 16384
        prefix = f"10.{net}.{block >> 6}."
        self.here, self.there = prefix + str((block & 63) * 4 + 1), prefix + str(
            (block & 63) * 4 + 2)
        self._drop: list[tuple[list[str], list[str]]] = []  # (prefix, rule) to delete
        self._shaped = False

    @property
    def exec_prefix(self) -> list[str]:
        """The command prefix that runs a program in the namespace."""
        return ["ip", "netns", "exec", self.name]

    def __enter__(self) -> Namespace:
        run("ip", "netns", "add", self.name)
        try:
            run("ip", "link", "add", self.here_dev, "type", "veth", "peer", "name",
                self.there_dev)
            run("ip", "link", "set", self.there_dev, "netns", self.name)
            run("ip", "addr", "add", f"{self.here}/30", "dev", self.here_dev)
            run("ip", "link", "set", self.here_dev, "up")
            for command in (["ip", "addr", "add", f"{self.there}/30", "dev", self.there_dev],
                            ["ip", "link", "set", self.there_dev, "up"],
                            ["ip", "link", "set", "lo", "up"]):
                run(*self.exec_prefix, *command)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.lose(None)
        with contextlib.suppress(subprocess.CalledProcessError):
            run("ip", "link", "del", self.here_dev)
        with contextlib.suppress(subprocess.CalledProcessError):
            run("ip", "netns", "del", self.name)

    def _both_ends(self, *tc: str) -> None:
        run("tc", *tc[:2], "dev", self.here_dev, *tc[2:])
        run(*self.exec_prefix, "tc", *tc[:2], "dev", self.there_dev, *tc[2:])

    def black(self, on: bool) -> None:
        """Drop every packet on the link, both ways (or stop dropping)."""
        if on:
            self._both_ends("qdisc", "add", "root", "pfifo", "limit", "0")
        else:
            self._both_ends("qdisc", "del", "root")

    def lose(self, share: float | None) -> None:
        """Drop a random `share` (0..1) of the packets arriving at each end (None: stop)."""
        for prefix, rule in reversed(self._drop):
            run(*prefix, "iptables", "-w", "-D", *rule)
        self._drop.clear()
        if share is None:
            return
        for prefix, device in (([], self.here_dev), (self.exec_prefix, self.there_dev)):
            rule = ["INPUT", "-i", device, "-m", "statistic", "--mode", "random",
                    "--probability", f"{share:.4f}", "-j", "DROP"]
            run(*prefix, "iptables", "-w", "-A", *rule)
            self._drop.append((prefix, rule))

    def limit(self, kbit: int | None) -> None:
        """Limit each direction to `kbit` kbit/s (None: no limit)."""
        if self._shaped:
            self._both_ends("qdisc", "del", "root")
            self._shaped = False
        if kbit is not None:
            self._both_ends("qdisc", "add", "root", "tbf", "rate", f"{kbit}kbit", "burst",
                            "4kb", "latency", "200ms")
            self._shaped = True
