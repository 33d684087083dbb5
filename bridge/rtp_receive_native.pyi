# Type stub of the C module bridge/rtp_receive_native.c (built by `pip install`).
from aiortc.rtp import HeaderExtensions

MAX_PACKET: int

# (payload_type, marker, sequence_number, timestamp, ssrc, csrc, payload, padding_size,
#  audio_level, abs_send_time)
Fields = tuple[int, int, int, int, int, tuple[int, ...], bytes, int, tuple[bool, int] | None,
               int | None]

def receive(data: bytes, unprotect: int, context: int, ids: HeaderExtensions) -> int | Fields: ...
def parse(data: bytes, ids: HeaderExtensions) -> Fields: ...
