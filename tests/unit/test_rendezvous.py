"""The nodes of a multi-host local job tell each other where their workers listen (driver/launchers/rendezvous.py), over
real sockets on loopback: three nodes started in any order, a node that never comes, a stranger on the port."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from scaletrain.contract.errors import LaunchError
from scaletrain.driver.launchers import local, rendezvous


def _nodes(port: int, ports_per_node: list[list[int]], order: list[int], timeout_s: float = 20.0) -> dict:
    results: dict[int, object] = {}

    def node(rank: int) -> None:
        try:
            results[rank] = rendezvous.exchange("127.0.0.1", port, rank, len(ports_per_node), ports_per_node[rank],
                                                timeout_s)  # fmt: skip
        except LaunchError as exc:
            results[rank] = exc

    threads = []
    for rank in order:  # node 0 last: the others keep trying until it listens
        threads.append(threading.Thread(target=node, args=(rank,)))
        threads[-1].start()
        time.sleep(0.3)
    for thread in threads:
        thread.join(30)
    return results


def test_every_node_gets_every_worker_in_rank_order_whoever_starts_first() -> None:
    port = local.free_port("127.0.0.1")
    results = _nodes(port, [[1000, 1001], [2000], [3000, 3001]], order=[2, 1, 0])
    expected = ("127.0.0.1:1000", "127.0.0.1:1001", "127.0.0.1:2000", "127.0.0.1:3000", "127.0.0.1:3001")
    assert results == {0: expected, 1: expected, 2: expected}
    with socket.create_server(("", port)):  # node 0 closed the port again: the ranks may use it
        pass


def test_a_node_that_never_comes_is_named_and_the_others_are_told() -> None:
    port = local.free_port("127.0.0.1")
    started = time.monotonic()
    results = _nodes(port, [[1000], [2000], [3000]], order=[0, 1], timeout_s=1.5)  # node 2 never starts
    assert time.monotonic() - started < 10
    assert "node(s) 2 of launcher.nnodes=3 did not report to node 0" in str(results[0])
    assert "did not send every node's address in time" in str(results[1])


def test_a_stranger_on_the_port_is_not_counted_as_a_node() -> None:
    port = local.free_port("127.0.0.1")
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.update(workers=rendezvous.exchange("127.0.0.1", port, 0, 2, [1], 20)))
    thread.start()
    time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", port)) as stranger:
        stranger.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert rendezvous.exchange("127.0.0.1", port, 1, 2, [2], 20) == ("127.0.0.1:1", "127.0.0.1:2")
    thread.join(10)
    assert box["workers"] == ("127.0.0.1:1", "127.0.0.1:2")


def test_node_1_without_node_0_says_how_to_fix_it() -> None:
    port = local.free_port("127.0.0.1")
    with pytest.raises(LaunchError, match=r"node 1 could not reach node 0 at launcher.master_addr=127.0.0.1:\d+"):
        rendezvous.exchange("127.0.0.1", port, 1, 2, [2], 0.5)
