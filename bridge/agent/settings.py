"""What the endpoint agent needs to know, and nothing of the server's settings.

`vcbridge agent` builds it from its flags and the same `VCBRIDGE_*` environment
variables and configuration file as the service (`vcbridge/cli.py`); tests and
benchmarks build it directly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# Event stream reconnection: 0.5 s doubling to 30 s, with jitter.
STREAM_RETRY = (0.5, 30.0)
# Rejoining a running conference after a drop: quick, then slower.
REJOIN_RETRY = (0.2, 5.0)
SUMMARY_SECONDS = 30.0  # how often a summary line goes to the log
HEARTBEAT_SECONDS = 5.0  # how often the agent reports its health to the controller


def split_servers(values: str | Sequence[str]) -> tuple[str, ...]:
    """Controller URLs from a comma list or several of them (each may be a comma list):
    stripped, without a trailing slash, each once, in the order given."""
    items = [values] if isinstance(values, str) else list(values)
    urls: list[str] = []
    for item in items:
        for url in item.split(","):
            url = url.strip().rstrip("/")
            if url and url not in urls:
                urls.append(url)
    return tuple(urls)


class AgentConfigError(Exception):
    """The agent cannot work with this configuration (for example a token of
    another endpoint); retrying would not help."""


@dataclass(frozen=True)
class AgentSettings:
    """One agent: which controllers, as which endpoint, with what media and network.

    `server` is the controller's URL, or several as a comma list; `servers` adds more.
    The agent uses the first that answers and moves to the next when it cannot be
    reached (`controller.py`); after normalising, `server` is the first and `servers`
    all of them.

    `media` is `testsrc` (a generated tone and colour card), a device under `/dev/`
    or a media file (see `media_sources.MediaSource`). `ice_servers` are STUN/TURN
    URIs; `ice_host_addresses` the local addresses offered as ICE host candidates
    and the networks remote candidates must be in (empty: all)."""

    server: str
    endpoint: str
    token: str = field(repr=False)  # never in a log line
    media: str = "testsrc"
    audio_device: str = "default"
    ice_servers: Sequence[str] = ()
    ice_host_addresses: Sequence[str] = ()
    summary_seconds: float = SUMMARY_SECONDS
    heartbeat_seconds: float = HEARTBEAT_SECONDS
    stream_retry: tuple[float, float] = STREAM_RETRY
    rejoin_retry: tuple[float, float] = REJOIN_RETRY
    # The call's figures in each heartbeat (off only to measure what they cost).
    call_stats: bool = True
    servers: Sequence[str] = ()

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__ (a trailing slash, lists).
        servers = split_servers([self.server, *self.servers])
        if not servers:
            raise AgentConfigError("no controller URL given (--server)")
        object.__setattr__(self, "servers", servers)
        object.__setattr__(self, "server", servers[0])
        object.__setattr__(self, "ice_servers", tuple(self.ice_servers))
        object.__setattr__(self, "ice_host_addresses", tuple(self.ice_host_addresses))
