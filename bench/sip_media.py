"""What a SIP room system's media costs the bridge, per operation (single thread, CPU time):

- audio: decoding one 20 ms G.711 / G.722 payload at the codec's rate and measuring its
  level (every packet of a SIP site, as there is no RFC 6464 level); bringing it up to
  48 kHz (only while the site is mixed, i.e. among the speakers); encoding one 20 ms mix
  frame in the site's codec (every frame: once for all the sites that hear the common
  mix, once more for each speaking site);
- video of an H.264-only room, at 640x360: its camera transcoded once (decode H.264,
  encode VP8) and the picture it watches transcoded for it (decode VP8, encode H.264),
  per frame; against forwarding H.264 conference-wide, which costs the bridge no codec
  work at all but needs every participant on H.264 (see docs/sip.md for the choice).

    python bench/sip_media.py [--frames 150]

The pictures are a moving gradient with noise (something like a camera, not a flat card,
which encodes in no time). Progress on stderr; one JSON line on stdout at the end, with
the load average: other work on the machine moves these figures.
"""

from __future__ import annotations

import project_path  # noqa: F401 - first: the project, not bench/, on sys.path

# isort: split

import argparse
import json
import math
import os
import statistics
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc.codecs.h264 import H264Decoder, H264Encoder
from aiortc.codecs.vpx import Vp8Decoder
from aiortc.jitterbuffer import JitterFrame

from bench.shared import log
from bridge.sip.audio_codecs import (
    CODECS,
    SipAudioDecoder,
    SipAudioEncoder,
    UpsampledPcm,
    Upsampler,
    level_of,
)
from bridge.sip.h264_transcoder import Vp8FrameEncoder

FRAME = 960


def cpu_us(work: Any) -> float:
    # The process's CPU, not the thread's: libx264 and libvpx encode in threads of their own.
    start = time.process_time()
    work()
    return (time.process_time() - start) * 1e6


def speech_like(frames: int) -> np.ndarray:
    t = np.arange(frames * FRAME) / 48000
    voice = np.sin(2 * math.pi * 220 * t) + 0.5 * np.sin(2 * math.pi * 1100 * t)
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 3 * t)
    noise = np.random.default_rng(1).normal(0, 0.05, len(t))
    return ((voice * envelope + noise) * 6000).astype(np.int16)


def audio(frames: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pcm = speech_like(frames)
    for name, codec in CODECS.items():
        encoder, decoder = SipAudioEncoder(codec, FRAME), SipAudioDecoder(codec)
        upsampler, to_48k = Upsampler(codec.sample_rate), UpsampledPcm(codec.sample_rate)
        payloads: list[bytes] = []
        encode, decode, upsample = [], [], []
        for i in range(frames):
            frame = pcm[i * FRAME:(i + 1) * FRAME]
            start = time.process_time()
            payloads.append(encoder.encode(frame))
            encode.append((time.process_time() - start) * 1e6)
        chunks: list[bytes] = []
        for payload in payloads:
            start = time.process_time()
            samples = decoder.decode(payload)
            level_of(samples)
            chunks.append(upsampler.chunk(samples))
            decode.append((time.process_time() - start) * 1e6)
        for chunk in chunks:
            start = time.process_time()
            to_48k.decode(chunk)
            upsample.append((time.process_time() - start) * 1e6)
        out[name] = {"encode_us_median": round(statistics.median(encode), 1),
                     "decode_and_level_us_median": round(statistics.median(decode), 1),
                     "upsample_us_median": round(statistics.median(upsample), 1)}
        log(f"{name}: {out[name]}")
    return out


def pictures(frames: int, width: int = 640, height: int = 360) -> list[av.VideoFrame]:
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for index in range(frames):
        image = np.stack([(x + index * 4) % 256, (y + index * 2) % 256,
                          (x + y + index) % 256], axis=-1).astype(np.uint8)
        image = np.clip(image + rng.integers(0, 12, image.shape, dtype=np.uint8), 0, 255)
        frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
        out.append(frame.reformat(format="yuv420p"))
    return out


def video(frames: int) -> dict[str, Any]:
    source = pictures(frames)
    # The room's camera as H.264 (what it would send), and the chair's as VP8.
    h264_encoder, vp8_encoder = H264Encoder(), Vp8FrameEncoder()
    h264_frames: list[bytes] = []
    for index, picture in enumerate(source):
        picture.pts, picture.time_base = index * 6000, Fraction(1, 90000)
        packets = h264_encoder._encode_frame(picture, index == 0)  # whole NAL units
        h264_frames.append(b"".join(b"\0\0\0\1" + nal for nal in packets))
    vp8_frames = [vp8_encoder.encode(p, i == 0) for i, p in enumerate(source)]

    decoder, encoder = H264Decoder(), Vp8FrameEncoder()
    inbound = []
    made = [0]
    for index, data in enumerate(h264_frames):
        def work(data: bytes = data, index: int = index) -> None:
            for picture in decoder.decode(JitterFrame(data=data, timestamp=index * 6000)):
                made[0] += bool(encoder.encode(picture, index == 0))
        inbound.append(cpu_us(work))
    if made[0] < frames * 0.9:
        raise RuntimeError(f"only {made[0]} of {frames} camera frames were transcoded")
    vp8_decoder, out_encoder = Vp8Decoder(), H264Encoder()
    outbound = []
    sent = [0]
    for index, data in enumerate(vp8_frames):
        def work_out(data: bytes = data, index: int = index) -> None:
            for picture in vp8_decoder.decode(JitterFrame(data=data, timestamp=index * 6000)):
                picture.pts, picture.time_base = index * 6000, Fraction(1, 90000)
                payloads, _timestamp = out_encoder.encode(picture, index == 0)
                sent[0] += bool(payloads)
        outbound.append(cpu_us(work_out))
    if sent[0] < frames * 0.9 or len(inbound) < frames:
        raise RuntimeError(f"only {sent[0]} of {frames} frames were transcoded")
    result = {
        "resolution": "640x360",
        "h264_in_to_vp8_ms_median": round(statistics.median(inbound[5:]) / 1000, 2),
        "vp8_to_h264_out_ms_median": round(statistics.median(outbound[5:]) / 1000, 2),
        "h264_frame_bytes_median": int(statistics.median(len(f) for f in h264_frames)),
    }
    result["one_h264_room_at_15fps_core_share"] = round(
        (result["h264_in_to_vp8_ms_median"] + result["vp8_to_h264_out_ms_median"]) * 15 / 1000,
        3)
    log(f"video: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    arguments = parser.parse_args()
    load_before = os.getloadavg()[0]
    figures = {"audio_20ms": audio(max(arguments.frames, 50)), "video": video(arguments.frames)}
    print(json.dumps({"bench": "sip_media", **figures,
                      "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}))


if __name__ == "__main__":
    main()
