"""Ports a launcher picks for its ranks (a rendezvous port, TF_CONFIG's worker addresses), held from the moment
they are picked until the ranks are done with them. Used on both sides: by the local launcher on its host, and by
each Ray rank actor on its node."""

from __future__ import annotations

import socket


def free_ports(addr: str, count: int) -> list[int]:
    """``count`` distinct ports free on ``addr`` now (all held open together, so none is handed out twice)."""
    with PortReservation(addr, count) as reserved:
        return reserved.ports


class PortReservation:
    """``count`` free ports on ``addr``, held bound until ``release()`` so that nothing else on the host takes one
    between the moment the launcher picks it and the moment a rank listens on it (seconds later, after its framework's
    import): no other process's bind, and no outgoing connection's local port. The sockets never listen, and carry
    SO_REUSEADDR and SO_REUSEPORT, so the rank the port is meant for still binds it (TensorFlow's gRPC server sets
    both, torch's TCPStore SO_REUSEADDR)."""

    def __init__(self, addr: str, count: int, avoid: tuple[int, ...] = ()) -> None:
        self.sockets: list[socket.socket] = []
        try:
            while len(self.sockets) < count:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if hasattr(socket, "SO_REUSEPORT"):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind((addr, 0))
                if s.getsockname()[1] in avoid:
                    s.close()
                    continue
                self.sockets.append(s)
        except BaseException:
            self.release()
            raise
        self.ports = [s.getsockname()[1] for s in self.sockets]

    def release(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets = []

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
