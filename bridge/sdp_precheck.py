"""A site's SDP offer checked by a cheap line scan before aiortc parses it. No I/O.

aiortc's `setRemoteDescription` costs the event loop time that grows with
the offer: about a millisecond per media line, and quadratically with the
remote ICE candidates of a transport (8,000 candidates in one media line
took 5 s on this machine's kind of CPU, see docs/signaling.md). The room
shares that loop with every site's media, so an offer is refused here, in
one pass over its lines, unless its shape is one a real client sends:

- at most `bytes_per_media` characters per allowed media line (plus one
  media line's worth for the session part): an aiortc offer takes about
  1.8 KB per video line with all its codecs, a browser's VP8-only line about
  2-4 KB;
- only media lines of the offer's kind, at least one and at most the number
  of slots this connection may receive (31 for the chair of a 31-site
  conference, one more for a moderator's console);
- at most `candidates_per_media` ICE candidates per media line (a host with
  IPv4 and IPv6, UDP and TCP, a STUN and a TURN server gathers about a dozen);
- a DTLS fingerprint (`a=fingerprint:`), at the session level or in every
  media line: media is always DTLS-SRTP, and aiortc fails later without one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["audio", "video"]


class OfferError(ValueError):
    """The site's offer is unusable (malformed SDP, wrong media lines, too large)."""


@dataclass(frozen=True)
class OfferBounds:
    """The shape an offer may have beyond its media-line count (which the room decides)."""

    bytes_per_media: int = 8 * 1024
    candidates_per_media: int = 32


DEFAULT_BOUNDS = OfferBounds()


def precheck_offer(sdp: object, kind: MediaKind, max_media: int,
                   bounds: OfferBounds = DEFAULT_BOUNDS) -> str:
    """`sdp` if it is an offer text of the allowed shape, else OfferError saying what is wrong.

    `kind`: the peer connection the offer is for (its media lines must all be
    of this kind); `max_media`: how many media lines this connection may offer."""
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise OfferError("sdp must be an SDP offer text")
    max_bytes = (max_media + 1) * bounds.bytes_per_media
    if len(sdp) > max_bytes:
        raise OfferError(f"the {kind} offer has {len(sdp)} characters; at most {max_bytes} "
                         f"for {max_media} media line(s)")
    media = 0
    session_fingerprint = False
    section_fingerprint = False
    unsigned_sections = 0
    candidates = 0
    for line in sdp.splitlines():
        if line.startswith("m="):
            if media and not section_fingerprint:
                unsigned_sections += 1
            media += 1
            if media > max_media:
                raise OfferError(f"the {kind} offer has more than {max_media} media line(s)")
            found = line[2:].split(" ", 1)[0]
            if found != kind:
                raise OfferError(f"the {kind} offer may only have {kind} media lines, "
                                 f"not {found[:20]!r}")
            section_fingerprint = False
            candidates = 0
        elif line.startswith("a=fingerprint:"):
            if media:
                section_fingerprint = True
            else:
                session_fingerprint = True
        elif line.startswith("a=candidate:") and media:
            candidates += 1
            if candidates > bounds.candidates_per_media:
                raise OfferError(f"a media line of the {kind} offer has more than "
                                 f"{bounds.candidates_per_media} ICE candidates")
    if media == 0:
        raise OfferError(f"the {kind} offer has no media line")
    if not section_fingerprint:
        unsigned_sections += 1
    if not session_fingerprint and unsigned_sections:
        raise OfferError("the offer has no DTLS fingerprint (a=fingerprint) for every media "
                         "line: media is DTLS-SRTP only")
    return sdp
