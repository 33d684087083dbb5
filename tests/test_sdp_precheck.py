"""The line scan that refuses an expensive or unusable offer before aiortc parses it.

Offers are real ones made by aiortc (the endpoint agent's stack), shaped by hand
into what a hostile client could send."""

from __future__ import annotations

import re

import pytest

from bridge.sdp_precheck import DEFAULT_BOUNDS, OfferError, precheck_offer
from harness.hostile_offers import aiortc_offer


def sections(sdp: str) -> tuple[str, list[str]]:
    head, *media = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    return head, media


def without_fingerprints(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith("a=fingerprint:"))


@pytest.mark.parametrize(("kind", "lines"), [("audio", 1), ("video", 1), ("video", 2),
                                             ("video", 31), ("video", 32)])
async def test_what_real_clients_offer_passes(kind: str, lines: int) -> None:
    # 31 video lines: the chair of a 31-site conference; 32: a moderator's console.
    sdp = await aiortc_offer(kind, lines)
    assert precheck_offer(sdp, kind, lines) == sdp  # type: ignore[arg-type]


async def test_more_media_lines_than_slots_are_refused() -> None:
    sdp = await aiortc_offer("video", 3)
    with pytest.raises(OfferError, match="more than 2 media line"):
        precheck_offer(sdp, "video", 2)


async def test_a_thousand_compact_media_lines_are_refused_by_the_scan() -> None:
    """The finding: 1,000 media lines in one message under the 512 KiB frame limit."""
    head, media = sections(await aiortc_offer("video", 1))
    line = "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=recvonly\r\na=rtpmap:97 VP8/90000\r\n"
    hostile = head + media[0] + "".join(line.replace("a=recv", f"a=mid:{i}\r\na=recv")
                                        for i in range(1, 1000))
    assert len(hostile) < 512 * 1024
    with pytest.raises(OfferError, match="more than 31 media line"):
        precheck_offer(hostile, "video", 31)


@pytest.mark.parametrize(("kind", "other"), [("audio", "video"), ("video", "audio"),
                                             ("video", "application")])
async def test_media_lines_of_another_kind_are_refused(kind: str, other: str) -> None:
    head, media = sections(await aiortc_offer(kind, 1))
    sdp = head + media[0] + media[0].replace(f"m={kind}", f"m={other}", 1)
    with pytest.raises(OfferError, match=f"only have {kind} media lines"):
        precheck_offer(sdp, kind, 2)  # type: ignore[arg-type]


async def test_an_offer_without_a_dtls_fingerprint_is_refused() -> None:
    sdp = await aiortc_offer("video", 2)
    with pytest.raises(OfferError, match="fingerprint"):
        precheck_offer(without_fingerprints(sdp), "video", 2)


async def test_a_fingerprint_is_needed_in_every_media_line_unless_the_session_has_one() -> None:
    head, media = sections(await aiortc_offer("video", 2))
    fingerprint = next(line for line in media[0].splitlines(keepends=True)
                       if line.startswith("a=fingerprint:"))
    one_missing = head + media[0] + without_fingerprints(media[1])
    with pytest.raises(OfferError, match="fingerprint"):
        precheck_offer(one_missing, "video", 2)
    last_missing = head + without_fingerprints(media[0]) + media[1]
    with pytest.raises(OfferError, match="fingerprint"):
        precheck_offer(last_missing, "video", 2)
    session_level = head + fingerprint + "".join(without_fingerprints(m) for m in media)
    assert precheck_offer(session_level, "video", 2) == session_level


async def test_too_many_ice_candidates_in_a_media_line_are_refused() -> None:
    # aiortc pairs candidates quadratically: 8,000 in one line took 5 s of the loop.
    head, media = sections(await aiortc_offer("audio", 1))

    def with_candidates(count: int) -> str:
        extra = "".join(f"a=candidate:x{i} 1 udp 2130706431 127.0.0.1 {2000 + i} typ host\r\n"
                        for i in range(count))
        return head + media[0].replace("a=end-of-candidates", extra + "a=end-of-candidates")

    already = media[0].count("a=candidate:")
    allowed = with_candidates(DEFAULT_BOUNDS.candidates_per_media - already)
    assert precheck_offer(allowed, "audio", 1) == allowed
    with pytest.raises(OfferError, match="ICE candidates"):
        precheck_offer(with_candidates(DEFAULT_BOUNDS.candidates_per_media - already + 1),
                       "audio", 1)


async def test_an_offer_too_large_for_its_media_lines_is_refused() -> None:
    sdp = await aiortc_offer("audio", 1)
    padded = sdp + "".join(f"a=x-junk:{i:08d}\r\n" for i in range(1000))
    with pytest.raises(OfferError, match="characters; at most 16384 for 1 media line"):
        precheck_offer(padded, "audio", 1)


@pytest.mark.parametrize("sdp", [None, 42, "", "hello", "o=- 1 1 IN IP4 0.0.0.0\r\nv=0\r\n"])
def test_not_an_sdp_text(sdp: object) -> None:
    with pytest.raises(OfferError, match="SDP offer text"):
        precheck_offer(sdp, "audio", 1)


def test_an_offer_without_media_lines_is_refused() -> None:
    with pytest.raises(OfferError, match="no media line"):
        precheck_offer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
                       "a=fingerprint:sha-256 AB:CD\r\n", "video", 2)
