"""Families collected at scrape time from values other parts keep: the conference
counts the refresher cached, the login counters of the core's login limiter, the SIP
gateway's status, the bridge rooms' audio mixes."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vcbridge.core.auth.login_limiter import LoginStats, Reason
from vcbridge.core.db.models import ACTIVE_STATUSES
from vcbridge.core.media_counters import MixSource
from vcbridge.core.sip_gateway_status import SipGatewayProbe, SipSitesProbe

CONFERENCE_STATES = tuple(s.value for s in ACTIVE_STATUSES)  # scheduled, open, live


class ConferenceCounts(Collector):
    """`vcbridge_conferences`, collected at scrape time from the refresher's cached counts.

    Counts older than their validity (the refresher stopped succeeding) are
    not exported: an absent series says "unknown", a stale one would lie."""

    def __init__(self) -> None:
        self.counts: dict[str, int] | None = None
        self.valid_until = 0.0

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "vcbridge_conferences",
            "Conferences by lifecycle state (from the database, refreshed every few seconds).",
            labels=["state"],
        )

    def describe(self) -> Iterable[Metric]:
        """The families this collector exports."""
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        """The families with their current values."""
        family = self._family()
        if self.counts is not None and time.monotonic() <= self.valid_until:
            for state in CONFERENCE_STATES:
                family.add_metric([state], self.counts.get(state, 0))
        return [family]


class LoginCounts(Collector):
    """The login counters, collected at scrape time from the core's login limiter."""

    def __init__(self, stats: LoginStats) -> None:
        self.stats = stats

    def describe(self) -> Iterable[Metric]:
        """The families this collector exports."""
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        """The families with their current values."""
        failures = CounterMetricFamily(
            "vcbridge_login_failures",
            "Failed logins (wrong user name or password, or an inactive account).")
        failures.add_metric([], self.stats.failures)
        refused = CounterMetricFamily(
            "vcbridge_logins_refused",
            "Logins refused by the login limiter (429), by reason: backoff (the user name "
            "from that address) or address (that address, any user names).",
            labels=["reason"])
        for reason in Reason:
            refused.add_metric([reason.value], self.stats.refused.get(reason, 0))
        return [failures, refused]


class SipGatewayState(Collector):
    """The SIP gateway (Janus's SIP plugin) as this process's client sees it, at scrape time.

    `vcbridge_sip_gateway_up`: 1 while a session with Janus is up (0: Janus down or
    unreachable, SIP rooms cannot be dialled); `vcbridge_sip_gateway_registered`: 1
    while registered with the proxy (only when registration is configured: calls
    into the bridge need it); `vcbridge_sip_legs`: SIP calls up now."""

    def __init__(self, probe: SipGatewayProbe) -> None:
        self.probe = probe

    def describe(self) -> Iterable[Metric]:
        """The families this collector exports."""
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        """The families with their current values."""
        status = self.probe.status
        up = GaugeMetricFamily("vcbridge_sip_gateway_up",
                               "1 while this process has a session with its SIP gateway "
                               "(Janus); 0: SIP room systems cannot be called.")
        up.add_metric([], 1.0 if status.reachable else 0.0)
        legs = GaugeMetricFamily("vcbridge_sip_legs", "SIP calls up through the gateway now.")
        legs.add_metric([], float(status.legs))
        families: list[Metric] = [up, legs]
        if status.registering:
            registered = GaugeMetricFamily(
                "vcbridge_sip_gateway_registered",
                "1 while the gateway is registered with the SIP proxy (calls into the bridge "
                "need it).")
            registered.add_metric([], 1.0 if status.registered else 0.0)
            families.append(registered)
        return families


class SipSitesReach(Collector):
    """The SIP rooms as the bridge's OPTIONS pings see them, at scrape time.

    `vcbridge_sip_site_up{endpoint}`: 1 when the room answered its last ping;
    `vcbridge_sip_site_options_rtt_seconds{endpoint}`: that answer's round trip (NaN
    without one). Only roster codes of SIP endpoints, so the label stays bounded."""

    def __init__(self, probe: SipSitesProbe) -> None:
        self.probe = probe

    def describe(self) -> Iterable[Metric]:
        """The families this collector exports."""
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        """The families with their current values."""
        up = GaugeMetricFamily("vcbridge_sip_site_up",
                               "1 when the SIP room system answered its last OPTIONS ping.",
                               labels=["endpoint"])
        rtt = GaugeMetricFamily("vcbridge_sip_site_options_rtt_seconds",
                                "Round trip of the SIP room's last OPTIONS answer (NaN: none).",
                                labels=["endpoint"])
        for code, reach in sorted(self.probe.sites().items()):
            up.add_metric([code], 1.0 if reach.up else 0.0)
            rtt.add_metric([code], reach.rtt_seconds if reach.rtt_seconds is not None
                           else float("nan"))
        return [up, rtt]


# The fates of the sites' packets in the mix, as `MixCounters` fields.
PACKET_FATES = {"decoded": "packets_decoded", "discarded": "packets_discarded",
                "dropped": "packets_dropped", "concealed": "packets_concealed",
                "malformed": "decode_errors"}


class AudioMixes(Collector):
    """The audio mixes of this process's bridge rooms, at scrape time (all rooms together,
    closed ones included, so the counters only grow; no conference label: unbounded).

    - `vcbridge_audio_mix_frames_total{speakers}`: frames mixed, by how many sites were
      mixed in them (0: nobody speaking, which costs no encode);
    - `vcbridge_audio_mix_skipped_frames_total`: frames the mix clock skipped because
      the process fell behind: every site of that room missed them (overload);
    - `vcbridge_audio_mix_encodes_total`: Opus encodes; `..._forwarded_total`: mix-minus
      packets that were the other speaker's own packet, sent without an encode;
    - `vcbridge_audio_mix_packets_total{fate}`: the sites' packets: decoded (mixed),
      discarded (not among the speakers), dropped (too many queued), concealed (a
      speaker's packet missing), malformed."""

    def __init__(self, source: MixSource) -> None:
        self.source = source

    def describe(self) -> Iterable[Metric]:
        """The families this collector exports."""
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        """The families with their current values."""
        mix = self.source()
        frames = CounterMetricFamily(
            "vcbridge_audio_mix_frames",
            "Audio frames mixed by this process's rooms, by the number of sites mixed.",
            labels=["speakers"])
        for speakers, count in enumerate(mix.frames_by_speakers):
            frames.add_metric([str(speakers)], count)
        packets = CounterMetricFamily(
            "vcbridge_audio_mix_packets",
            "Sites' audio packets at the mix, by fate: decoded, discarded (not among the "
            "speakers), dropped (queue full), concealed (missing), malformed.",
            labels=["fate"])
        for fate, field in PACKET_FATES.items():
            packets.add_metric([fate], getattr(mix, field))
        return [
            frames,
            CounterMetricFamily(
                "vcbridge_audio_mix_skipped_frames",
                "Audio frames skipped because the process fell behind (every site of the "
                "room missed them).", value=mix.skipped_frames),
            CounterMetricFamily("vcbridge_audio_mix_encodes", "Opus encodes of the mixes.",
                                value=mix.encodes),
            CounterMetricFamily(
                "vcbridge_audio_mix_forwarded",
                "Mix-minus packets sent as the other speaker's own packet, not encoded.",
                value=mix.forwarded),
            packets,
        ]
