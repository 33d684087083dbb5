"""Pre-encoded media for the conference benchmark (`bench/conference.py`).

Every simulated site sends a clip encoded once, in advance, and looped: a
distinct 640x360 15 fps VP8 video (keyframe at the start and every 2 s,
about 500 kbit/s) and a speech-like Opus clip (20 ms packets: tone bursts
with pauses, one or two "talkers" louder than the rest), each Opus packet
with its RFC 6464 level computed here, because aiortc only computes the level
when it encodes audio itself.

Encoding runs once per parameter set and is cached on disk (by default in
`<tmp>/vcbridge-bench-media/<key>/`), shared by the load processes:

- `<code>.bin`: the clip's bytes (video frames then audio packets, back to back);
- `<code>.json`: offsets and sizes, keyframe flags, per-packet audio levels;
- `index.json`: the parameters and, for every video frame of every site, a
  hash of its bytes -> the site it belongs to. The bridge forwards VP8 frames
  unchanged, so a receiving site identifies the source of a frame by its hash,
  without decoding it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

WIDTH, HEIGHT, FPS = 640, 360, 15
VIDEO_BITRATE = 500_000  # what the clips average, keyframes included
ENCODER_BITRATE = 360_000  # libvpx target: the clips overshoot it a little (keyframes)
VIDEO_SECONDS = 4  # 60 frames, looped
KEYFRAME_INTERVAL = 30  # frames (2 s)
NOISE = 32  # amplitude of the per-frame noise blocks: what makes the bitrate
AUDIO_SECONDS = 6
AUDIO_FRAME_MS = 20
SAMPLE_RATE = 48_000
OPUS_BITRATE = 32_000
FORMAT_VERSION = 3  # bump when the content or the file layout changes


FRAME_PREFIX = 256  # bytes: always inside a frame's first RTP packet


def frame_key(data: bytes) -> str:
    """The identity of one encoded video frame (hex digest of its bytes)."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def frame_prefix_key(data: bytes) -> str:
    """The identity of a frame from its first bytes (what its first RTP packet carries)."""
    return hashlib.blake2b(data[:FRAME_PREFIX], digest_size=8).hexdigest()


@dataclass
class SiteMedia:
    """One site's looped clips."""

    code: str
    video: list[bytes]
    keyframes: list[int]  # indices into `video`
    audio: list[bytes]
    levels: list[int]  # RFC 6464 level of each audio packet: 0 (loud) .. 127 (silent)
    audio_frame_ms: int = AUDIO_FRAME_MS  # duration of each audio packet


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "vcbridge-bench-media"


def _params_key(audio_frame_ms: int) -> str:
    params = [FORMAT_VERSION, WIDTH, HEIGHT, FPS, ENCODER_BITRATE, NOISE, VIDEO_SECONDS,
              KEYFRAME_INTERVAL, AUDIO_SECONDS, audio_frame_ms, OPUS_BITRATE, av.__version__]
    return hashlib.sha1(json.dumps(params).encode(), usedforsecurity=False).hexdigest()[:12]


# -- video ------------------------------------------------------------------------


def _encode_video(index: int) -> tuple[list[bytes], list[int]]:
    """A distinct moving picture for site number `index`, VP8-encoded."""
    rng = np.random.default_rng(1000 + index)
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height = WIDTH, HEIGHT
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.framerate = Fraction(FPS)
    ctx.bit_rate = ENCODER_BITRATE
    ctx.gop_size = KEYFRAME_INTERVAL
    rate = f"{ENCODER_BITRATE // 1000}k"
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                   "minrate": rate, "maxrate": rate, "b": rate,
                   "keyint_min": str(KEYFRAME_INTERVAL)}
    # A site-coloured background with a texture that moves, plus fresh coarse
    # noise each frame: every frame differs (distinct hashes) and the encoder
    # has enough detail to spend about the target bitrate.
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    hue = np.array([(index * 67) % 256, (index * 131 + 80) % 256, (index * 29 + 160) % 256],
                   dtype=np.int32)
    texture = ((xx[..., None] * (1 + index % 3) + yy[..., None] * (2 + index % 5)
                + hue) % 256).astype(np.uint8)
    # The first keyframe of a fresh encoder is huge (rate control starts cold):
    # encode a warm-up of one keyframe interval and keep what follows it.
    warmup = KEYFRAME_INTERVAL
    count = VIDEO_SECONDS * FPS
    encoded: list[bytes] = []
    for i in range(warmup + count):
        noise = rng.integers(0, NOISE, (HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
        image = np.roll(texture, (i * 3, i * 5), axis=(0, 1)) // 2 + noise.repeat(8, 0).repeat(
            8, 1)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        if i % KEYFRAME_INTERVAL == 0:
            frame.pict_type = av.video.frame.PictureType.I
        encoded.extend(bytes(packet) for packet in ctx.encode(frame))
    encoded.extend(bytes(packet) for packet in ctx.encode(None))
    frames = encoded[warmup:]
    # VP8 frame tag: P bit 0 = key frame
    keyframes = [i for i, data in enumerate(frames) if not data[0] & 0x01]
    if len(frames) != count or not keyframes or keyframes[0] != 0:
        raise RuntimeError(f"unexpected VP8 output: {len(frames)} frames, keyframes {keyframes}")
    return frames, keyframes


# -- audio ------------------------------------------------------------------------


def speech_like(index: int, loud: bool) -> np.ndarray:
    """Syllable-like tone bursts with pauses, mono int16 at 48 kHz, `AUDIO_SECONDS` long:
    a talker's (`loud`) or a quiet room's murmur."""
    rng = np.random.default_rng(2000 + index)
    samples = AUDIO_SECONDS * SAMPLE_RATE
    t = np.arange(samples) / SAMPLE_RATE
    pitch = 110.0 + 9.0 * index
    voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3, 4))
    envelope = np.zeros(samples)
    position = 0
    while position < samples:
        burst = int(rng.uniform(0.8, 2.5) * SAMPLE_RATE)
        pause = int(rng.uniform(0.2, 1.2) * SAMPLE_RATE)
        end = min(position + burst, samples)
        span = np.arange(end - position) / SAMPLE_RATE
        # 4-5 syllables a second, never quite silent inside a burst
        envelope[position:end] = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(4, 5) * span)
        position = end + pause
    # Talkers around -20 dBov, the rest murmur around -45 dBov (room noise, a cough).
    amplitude = 0.18 if loud else 0.01
    noise = rng.normal(0, 0.002, samples)
    signal = amplitude * envelope * voice / 2.0 + noise
    return np.clip(signal * 32767, -32768, 32767).astype(np.int16)


def _level(pcm: np.ndarray) -> int:
    """RFC 6464 level (0..127, -dBov) as aiortc computes it (RFC 6465 appendix A)."""
    rms = math.sqrt(float(np.mean(pcm.astype(np.float64) ** 2))) / 32767
    if rms <= 0:
        return 127
    return int(min(127, max(0, round(-20 * math.log10(rms)))))


def _encode_audio(index: int, loud: bool, frame_ms: int) -> tuple[list[bytes], list[int]]:
    pcm = speech_like(index, loud)
    frame_samples = SAMPLE_RATE * frame_ms // 1000
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = SAMPLE_RATE
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.bit_rate = OPUS_BITRATE
    ctx.time_base = Fraction(1, SAMPLE_RATE)
    ctx.options = {"frame_duration": str(frame_ms), "application": "voip"}
    ctx.open()
    packets: list[bytes] = []
    levels: list[int] = []
    for start in range(0, len(pcm) - frame_samples + 1, frame_samples):
        chunk = pcm[start:start + frame_samples]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = Fraction(1, SAMPLE_RATE)
        frame.pts = start
        out = ctx.encode(frame)
        if len(out) != 1:
            raise RuntimeError(f"libopus returned {len(out)} packets for one frame")
        packets.append(bytes(out[0]))
        levels.append(_level(chunk))
    return packets, levels


# -- cache ------------------------------------------------------------------------


def _encode_site(directory: str, index: int, code: str, loud: bool, audio_frame_ms: int
                 ) -> dict[str, list[str]]:
    frames, keyframes = _encode_video(index)
    packets, levels = _encode_audio(index, loud, audio_frame_ms)
    blob = b"".join(frames) + b"".join(packets)
    meta = {
        "code": code, "loud": loud, "keyframes": keyframes,
        "video": [len(f) for f in frames], "audio": [len(p) for p in packets],
        "levels": levels, "audio_frame_ms": audio_frame_ms,
    }
    final = Path(directory) / f"{code}.bin"
    tmp = final.with_suffix(".bin.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, final)
    (Path(directory) / f"{code}.json").write_text(json.dumps(meta))
    return {code: [frame_key(f) for f in frames]}


def prepare(codes: list[str], talkers: list[str], cache_dir: Path | None = None,
            workers: int = 2, audio_frame_ms: int = AUDIO_FRAME_MS) -> Path:
    """Encode (or find cached) media for `codes`; returns the directory holding it.

    Each site's content depends only on its position in `codes` and on
    whether it is a talker, so the cache of the 31-site roster also serves
    smaller runs that use its first sites. `audio_frame_ms` is the duration of
    each site's Opus packets (20, or 60 as the agent sends when the bridge asks)."""
    root = (cache_dir or default_cache_dir()) / _params_key(audio_frame_ms)
    root.mkdir(parents=True, exist_ok=True)
    index_file = root / "index.json"
    index: dict[str, Any] = json.loads(index_file.read_text()) if index_file.exists() else {}
    sites: dict[str, Any] = index.get("sites", {})
    wanted = {code: (i, code in talkers) for i, code in enumerate(codes)}
    missing = [code for code, (i, loud) in wanted.items()
               if sites.get(code, {}).get("index") != i or sites[code].get("loud") != loud
               or not (root / f"{code}.bin").exists()]
    if missing:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_encode_site, str(root), wanted[c][0], c, wanted[c][1],
                                   audio_frame_ms)
                       for c in missing]
            for code, future in zip(missing, futures, strict=True):
                keys = future.result(timeout=600)[code]
                sites[code] = {"index": wanted[code][0], "loud": wanted[code][1], "keys": keys}
        index = {"version": FORMAT_VERSION, "fps": FPS, "frame_ms": audio_frame_ms,
                 "sites": sites}
        tmp = index_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(index))
        os.replace(tmp, index_file)
    return root


def load_site(root: Path, code: str) -> SiteMedia:
    """Read one site's clips from the cache."""
    meta = json.loads((root / f"{code}.json").read_text())
    blob = (root / f"{code}.bin").read_bytes()
    position = 0
    video: list[bytes] = []
    for size in meta["video"]:
        video.append(blob[position:position + size])
        position += size
    audio: list[bytes] = []
    for size in meta["audio"]:
        audio.append(blob[position:position + size])
        position += size
    return SiteMedia(code, video, list(meta["keyframes"]), audio, list(meta["levels"]),
                     int(meta.get("audio_frame_ms", AUDIO_FRAME_MS)))


def frame_sources(root: Path, codes: list[str] | None = None) -> dict[str, str]:
    """Hash of every encoded video frame -> the site whose clip it belongs to.

    Hashes shared by two sites (never seen; the content differs) map to "?"."""
    sites = json.loads((root / "index.json").read_text())["sites"]
    owners: dict[str, str] = {}
    for code, site in sites.items():
        if codes is not None and code not in codes:
            continue
        for key in site["keys"]:
            owners[key] = "?" if owners.get(key, code) != code else code
    return owners


def frame_prefix_sources(root: Path) -> dict[str, str]:
    """Like `frame_sources`, keyed by `frame_prefix_key` (read from the clips)."""
    sites = json.loads((root / "index.json").read_text())["sites"]
    owners: dict[str, str] = {}
    for code in sites:
        for frame in load_site(root, code).video:
            key = frame_prefix_key(frame)
            owners[key] = "?" if owners.get(key, code) != code else code
    return owners


def describe(root: Path, code: str) -> dict[str, float]:
    """Bitrates of one site's clips (for the report)."""
    media = load_site(root, code)
    video_kbps = sum(map(len, media.video)) * 8 * FPS / len(media.video) / 1000
    audio_kbps = (sum(map(len, media.audio)) * 8 * (1000 / media.audio_frame_ms)
                  / len(media.audio) / 1000)
    return {"video_kbps": round(video_kbps, 1), "audio_kbps": round(audio_kbps, 1),
            "median_level": float(np.median(media.levels))}
