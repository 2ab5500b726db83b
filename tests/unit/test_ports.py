"""The ports a launcher picks for its ranks are held from the moment it picks them until the ranks are done
(PortReservation: the local launcher's for an attempt, a Ray rank actor's for its life): the ranks that are meant to
listen on them can, nothing else on the host can take them meanwhile."""

from __future__ import annotations

import errno
import socket

import pytest

from scaletrain.common.ports import PortReservation


def test_reserved_ports_refuse_other_binds_and_outgoing_connections_until_released():
    with PortReservation("127.0.0.1", 2) as reserved:
        first, second = reserved.ports
        with socket.socket() as other, pytest.raises(OSError) as refused:
            other.bind(("127.0.0.1", first))
        assert refused.value.errno == errno.EADDRINUSE
        with socket.socket() as server:  # no outgoing connection gets a reserved port as its own
            server.bind(("127.0.0.1", 0))
            server.listen(512)
            local_ports = set()
            for _ in range(200):
                with socket.create_connection(server.getsockname()) as client:
                    local_ports.add(client.getsockname()[1])
        assert not local_ports & {first, second}
    with socket.socket() as after:  # released: free for anyone again
        after.bind(("127.0.0.1", first))


def test_the_rank_a_port_is_meant_for_still_binds_it():
    """TensorFlow's gRPC server binds 0.0.0.0 with SO_REUSEADDR and SO_REUSEPORT; torch's TCPStore SO_REUSEADDR."""
    torch_distributed = pytest.importorskip("torch.distributed", reason="torch's TCPStore needs torch")
    with PortReservation("127.0.0.1", 2, avoid=(29500,)) as reserved:
        grpc_port, store_port = reserved.ports
        assert 29500 not in reserved.ports
        with socket.socket() as grpc_like:
            grpc_like.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            grpc_like.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            grpc_like.bind(("0.0.0.0", grpc_port))
            grpc_like.listen()
        store = torch_distributed.TCPStore("127.0.0.1", store_port, 1, is_master=True, wait_for_workers=False)
        store.set("key", "value")
        assert store.get("key") == b"value"
