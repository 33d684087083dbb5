"""What the bridge changes in the SDP of a SIP leg and what it reads from a room system's
answer: the keypad's telephone-event offered, a rejected video line made usable for
aiortc, and malformed or hostile answers refused with a reason."""

from __future__ import annotations

import pytest

from bridge.sip.sdp_munging import SipMediaError, add_telephone_event, read_answer

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 96 9 0 8\r\na=mid:0\r\na=rtpmap:96 opus/48000/2\r\n"
    "a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 97 98 101 102\r\na=mid:1\r\na=rtpmap:97 VP8/90000\r\n"
    "a=rtpmap:98 rtx/90000\r\na=rtpmap:101 H264/90000\r\na=rtpmap:102 rtx/90000\r\n")

SESSION = ("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
           "a=fingerprint:sha-256 AA:BB\r\n")
AUDIO_PCMU = ("m=audio 9 UDP/TLS/RTP/SAVPF 0 99\r\na=mid:0\r\na=ice-ufrag:abcd\r\n"
              "a=ice-pwd:0123456789abcdefghijkl\r\na=setup:active\r\na=rtcp-mux\r\n"
              "a=rtpmap:0 PCMU/8000\r\na=rtpmap:99 telephone-event/8000\r\na=sendrecv\r\n")
VIDEO_VP8 = "m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:1\r\na=rtpmap:97 VP8/90000\r\n"
VIDEO_REJECTED = "m=video 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 127.0.0.1\r\na=inactive\r\na=mid:1\r\n"


def test_the_offer_carries_telephone_event_on_a_free_payload_type() -> None:
    offer, pt = add_telephone_event(OFFER)
    assert pt not in (96, 9, 0, 8, 97, 98, 101, 102)
    audio = offer.split("m=video")[0]
    assert audio.splitlines()[5].endswith(f" {pt}")  # the audio media line
    assert f"a=rtpmap:{pt} telephone-event/8000" in audio
    assert f"a=fmtp:{pt} 0-16" in audio
    assert "telephone-event" not in offer.split("m=video")[1]


def test_an_answer_says_what_was_negotiated() -> None:
    text, negotiated = read_answer(SESSION + AUDIO_PCMU + VIDEO_VP8)
    assert (negotiated.audio, negotiated.audio_payload_type) == ("PCMU", 0)
    assert negotiated.telephone_event == 99
    assert (negotiated.video, negotiated.video_payload_type) == ("VP8", 97)
    assert text.count("m=") == 2


def test_a_rejected_video_line_becomes_inactive_and_bundled() -> None:
    text, negotiated = read_answer(SESSION + AUDIO_PCMU + VIDEO_REJECTED)
    assert negotiated.video is None
    video = text.split("m=video")[1]
    assert not text.count("m=video 0 ")
    assert "a=inactive" in video and "a=ice-ufrag:abcd" in video  # aiortc needs both
    assert "a=group:BUNDLE 0 1" in text


@pytest.mark.parametrize(("answer", "reason"), [
    ("", "malformed"),
    ("hello", "malformed"),
    ("v=0\r\n" + "a=x\r\n" * 20000, "malformed"),  # too large
    (SESSION + VIDEO_VP8, "malformed"),  # no audio line
    (SESSION + AUDIO_PCMU + AUDIO_PCMU, "malformed"),  # two audio lines
    (SESSION + "m=audio 9 RTP/AVP x y\r\n", "malformed"),
    (SESSION + "m=audio\r\n", "malformed"),
    (SESSION + "m=audio 0 RTP/AVP 0\r\n", "no-common-codec"),  # audio rejected
    (SESSION + "m=audio 9 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n", "no-common-codec"),
    (SESSION + "m=audio 9 RTP/AVP 99\r\na=rtpmap:99 telephone-event/8000\r\n",
     "no-common-codec"),
])
def test_unusable_answers_are_refused_with_a_reason(answer: str, reason: str) -> None:
    with pytest.raises(SipMediaError) as caught:
        read_answer(answer)
    assert caught.value.reason == reason


def test_a_non_string_answer_is_malformed() -> None:
    with pytest.raises(SipMediaError) as caught:
        read_answer(None)  # type: ignore[arg-type]
    assert caught.value.reason == "malformed"
