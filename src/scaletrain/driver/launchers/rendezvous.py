"""Where every worker of a multi-host local job listens: the nodes' launchers tell each other, through node 0.

``python -m scaletrain launcher.nnodes=2 launcher.node_rank=I launcher.master_addr=HOST0 ...`` starts the ranks
of one host; a strategy whose ranks must name every peer before they start (MultiWorkerMirrored's TF_CONFIG worker
list) needs the other hosts' addresses, which no host knows alone. So before starting its ranks, each node's
launcher meets the others at ``master_addr:master_port``: node 0 listens there, every other node connects and sends
its node rank and the ports its ranks will listen on, and node 0 answers all of them with the whole list in rank
order. A node's address is the one node 0 sees its connection come from, and node 0's own is the one the others
reached it at: the address that routes between them, never a loopback address a hostname resolves to. Node 0 closes
the port again before any rank starts, so the ranks may use it. One JSON line each way; no extra dependency.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence

from scaletrain.contract.errors import LaunchError

_RETRY_S = 0.2
_REPORT_S = 10.0  # a node sends its report at once; a connection silent this long is not a node


def exchange(
    master_addr: str, port: int, node_rank: int, nnodes: int, ports: Sequence[int], timeout_s: float
) -> tuple[str, ...]:
    """Every worker's "address:port", in rank order (node 0's ranks first), once all ``nnodes`` nodes met."""
    deadline = time.monotonic() + timeout_s
    if node_rank == 0:
        return _collect(port, nnodes, list(ports), deadline)
    return _report(master_addr, port, node_rank, list(ports), deadline)


def _collect(port: int, nnodes: int, ports: list[int], deadline: float) -> tuple[str, ...]:
    with socket.create_server(("", port), reuse_port=False) as server:
        peers: dict[int, tuple[socket.socket, str, list[int]]] = {}
        own_ip = None
        try:
            while len(peers) < nnodes - 1:
                server.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    conn, (peer_ip, _) = server.accept()
                except TimeoutError:
                    raise LaunchError(_missing(nnodes, peers, port)) from None
                conn.settimeout(min(_REPORT_S, max(0.01, deadline - time.monotonic())))  # a silent stranger
                rank, node_ports = _node_report(conn)
                if rank in peers or not 0 < rank < nnodes:
                    conn.close()  # not a node of this job, a duplicate, or silent: not counted
                    continue
                peers[rank] = (conn, peer_ip, node_ports)
                own_ip = own_ip or conn.getsockname()[0]  # the address the other nodes reach this one at
            hosts = {0: (own_ip, ports)} | {rank: (ip, node_ports) for rank, (_, ip, node_ports) in peers.items()}
            workers = tuple(f"{hosts[rank][0]}:{p}" for rank in range(nnodes) for p in hosts[rank][1])
            for conn, _, _ in peers.values():
                conn.sendall(json.dumps({"workers": workers}).encode() + b"\n")
            return workers
        finally:
            for conn, _, _ in peers.values():
                conn.close()


def _report(master_addr: str, port: int, node_rank: int, ports: list[int], deadline: float) -> tuple[str, ...]:
    while True:  # node 0 may not listen yet
        try:
            conn = socket.create_connection((master_addr, port), timeout=max(0.01, deadline - time.monotonic()))
            break
        except OSError as exc:
            if time.monotonic() + _RETRY_S >= deadline:
                raise LaunchError(
                    f"node {node_rank} could not reach node 0 at launcher.master_addr={master_addr}:{port} "
                    f"({exc.strerror or exc}); start node 0 too, with the same launcher.master_port, and check that "
                    "this host can reach it."
                ) from None
            time.sleep(_RETRY_S)
    with conn:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        conn.sendall(json.dumps({"node_rank": node_rank, "ports": ports}).encode() + b"\n")
        try:
            return tuple(_read_line(conn)["workers"])
        except (TimeoutError, KeyError):
            raise LaunchError(
                f"node 0 at {master_addr}:{port} did not send every node's address in time: a node of the job did "
                "not start, or started with another launcher.nnodes; start every node with the same settings."
            ) from None


def _node_report(conn: socket.socket) -> tuple[int, list[int]]:
    """(node rank, its ports) from a connecting node; (-1, []) for anything else."""
    try:
        message = _read_line(conn)
        return int(message["node_rank"]), [int(p) for p in message["ports"]]
    except (TimeoutError, KeyError, TypeError, ValueError):
        return -1, []


def _read_line(conn: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    try:
        message = json.loads(data or b"{}")
    except json.JSONDecodeError:
        return {}
    return message if isinstance(message, dict) else {}


def _missing(nnodes: int, peers: dict, port: int) -> str:
    absent = [str(rank) for rank in range(1, nnodes) if rank not in peers]
    return (
        f"node(s) {', '.join(absent)} of launcher.nnodes={nnodes} did not report to node 0 on port {port} in time; "
        "start every node with the same launcher.master_addr and launcher.master_port."
    )
