"""Each connected site's media, and each room's audio mix, as this bridge process sees
them, for the metrics.

Counters are cumulative over the site's current connection (the metrics turn
them into rates); the round-trip time and jitter are the latest the bridge
learnt from the site's RTCP receiver reports on the audio it sends the site
(the common mix or its mix-minus). Nothing here is decoded or awaited: it
reads counters the receive taps and aiortc's senders keep anyway."""

from __future__ import annotations

from bridge.media_tap import sender_figures
from bridge.rooms import RoomRegistry
from vcbridge.core.media_counters import MediaCounters, MixCounters


def site_media(rooms: RoomRegistry) -> dict[str, MediaCounters]:
    """Endpoint code -> its media, for every site connected to a room of this process."""
    report: dict[str, MediaCounters] = {}
    for room in list(rooms.rooms.values()):
        for code, connection in list(room.connections.items()):
            audio, video = room.audio.stats.get(code), room.sources.get(code)
            rtt: float | None = None
            jitter: float | None = None
            sent = 0
            for pc in (connection.peers.audio_pc, connection.peers.video_pc):
                if pc is None:
                    continue
                for sender in pc.getSenders():
                    sender_rtt, sender_jitter, octets = sender_figures(sender)
                    sent += octets
                    if sender.kind == "audio":
                        rtt = sender_rtt
                        if sender_jitter is not None:
                            jitter = sender_jitter / connection.peers.audio_clock
            report[code] = MediaCounters(
                packets_received=audio.packets if audio else None,
                packets_lost=audio.lost if audio else None,
                bytes_received=(audio.bytes if audio else 0) + (video.bytes if video else 0),
                bytes_sent=sent,
                frames_received=video.frames if video else None,
                round_trip_time_seconds=rtt,
                jitter_seconds=jitter,
            )
    return report


def mix_totals(rooms: RoomRegistry) -> MixCounters:
    """The audio mixes of this process's rooms so far, closed rooms' included."""
    total = rooms.closed_mixes
    for room in list(rooms.rooms.values()):
        total = total.plus(room.audio.mix_counters())
    return total
