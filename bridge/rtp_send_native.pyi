# Type stub of the C module bridge/rtp_send_native.c (built by `pip install`).
from collections.abc import Sequence

MAX_TRAILER: int
MAX_PACKET: int

def send_frame(fd: int, sockaddr: bytes, protect: int, context: int, extension: bytes,
               abs_offset: int, now: float, payload_type: int, sequence: int,
               timestamp: int, ssrc: int, first_prefix: bytes, prefix: bytes,
               chunks: Sequence[bytes], gso: bool) -> int | tuple[int, list[bytes]]: ...
