"""The test harness's free ports: services started together in one network namespace
(Janus, baresip rooms) must never be handed the same port."""

from __future__ import annotations

from harness.service_process import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    # The kernel offers a just-closed probe's port again often (about one call in twelve
    # here); a room started on Janus's HTTP port fails with "Address already in use".
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
