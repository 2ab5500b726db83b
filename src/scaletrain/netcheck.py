"""A network check before training: time every pair of a job's hosts and an all-reduce over all of them, in seconds,
and say in one sentence whether a host's links are much slower than the others' (or than you expect).

    python -m scaletrain.netcheck --ray-address HEAD:6379              # the nodes of a Ray cluster
    python -m scaletrain.netcheck --serve                              # on each host, then from anywhere:
    python -m scaletrain.netcheck --hosts node1,node2,node3 --expect-gbit 10 --json netcheck.json
    python -m scaletrain +strategy=ddp launcher=ray launcher.address=HEAD:6379 preflight.network=true

One small agent runs on each host (a Ray actor pinned to its node, num_cpus=0, so a busy cluster still takes it; or
``--serve``). The agents open TCP connections to each other at the hosts' own addresses and time, for every pair
(scheduled in rounds in which each host is in at most one pair, so pairs do not share a link): a bulk transfer each
way (``--bytes``, at most ``--cap-s`` seconds; the receiver's clock, so socket buffers do not flatter it) and small
round trips. Then all agents run a ring all-reduce of float32 buffers (``--allreduce-sizes``: 2(N−1) steps, 2(N−1)/N
× the buffer's bytes on each host's link each way, what DDP's gloo ring sends) and the medians are fitted to the α-β
model of ``scaling/model.py``.

The verdict. A pair's bandwidth is the slower of its two directions, and a transfer runs at the slower of the two
hosts' links, so a host's own link carries at least its best pair's bandwidth: that is the host's figure. A host is
named when its figure is below ``--ratio`` (default half) of the median of the other hosts' figures (three hosts or
more: with two, which end of the one link is slow cannot be told), below ``--expect-gbit`` less 10 %, when it could
not be reached, or when its round trips are more than twice the others' median and at least 1 ms longer. Exit code
0: no host named; 1: hosts named; 2: the check could not run (a usage error, an unreachable agent or cluster).

Only the standard library and NumPy are needed on the hosts; Ray only for ``--ray-address`` (imported then).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import queue
import secrets
import select
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("scaletrain")

DEFAULT_PORT = 29499  # --serve's port (an agent's one port: control, bulk, ping and ring connections)
DEFAULT_BYTES = 4 * 2**20  # per bulk transfer and direction
DEFAULT_CAP_S = 1.0  # a transfer ends after this long however much is left: a slow link costs no more
DEFAULT_PINGS = 20
DEFAULT_SIZES = (16 * 2**10, 256 * 2**10, 2 * 2**20)  # all-reduce buffers, bytes
DEFAULT_REPEATS = 3  # timed all-reduces per size, after one warm-up
DEFAULT_RATIO = 0.5  # a host below this share of the others' median is named
EXPECT_TOLERANCE = 0.1  # --expect-gbit: a host within 10 % under it is not named (a Python stream's own overhead)
RTT_FACTOR, RTT_MIN_EXTRA_S = 2.0, 1e-3  # a host whose round trips are twice the others' and 1 ms longer is named
CONNECT_TIMEOUT_S = 5.0
CALL_SLACK_S = 15.0  # on top of a call's own work: how long the coordinator waits for an agent's answer

_CHUNK = 256 * 2**10
_PING_BYTES = 64
_TOKEN = 16  # bytes of a ring connection's token


# --- the agent on each host ----------------------------------------------------------------------------------------


class Agent:
    """One host's end of the check: a TCP server (bulk sink, echo, ring links, and the control protocol of
    ``--serve``) and the client-side measurements. Its methods return JSON-able dicts; run as a Ray actor too."""

    def __init__(self, bind: str = "0.0.0.0", port: int = 0, advertise: str | None = None) -> None:
        self._listener = socket.create_server((bind, port), backlog=64, reuse_port=False)
        self.port = self._listener.getsockname()[1]
        self.advertise = advertise
        self._rings: dict[bytes, socket.socket] = {}
        self._ring_cond = threading.Condition()
        self._closed = False
        threading.Thread(target=self._accept, name="netcheck-accept", daemon=True).start()

    # -- what the coordinator calls --

    def info(self) -> dict[str, Any]:
        address, node_id = self.advertise, None
        try:  # inside a Ray actor: the node's own address, as the cluster knows it
            import ray

            if ray.is_initialized():
                address = address or ray.util.get_node_ip_address()
                node_id = ray.get_runtime_context().get_node_id()
        except ImportError:
            pass
        return {"address": address, "port": self.port, "hostname": socket.gethostname(), "node_id": node_id}

    def bandwidth(self, peer: str, port: int, nbytes: int, cap_s: float) -> dict[str, Any]:
        """Send ``nbytes`` (at most ``cap_s`` seconds' worth) to the peer's agent; the rate it received them at."""
        try:
            return _send_bulk(peer, port, nbytes, cap_s)
        except (OSError, ValueError) as exc:
            return {"error": _why(exc)}

    def latency(self, peer: str, port: int, count: int) -> dict[str, Any]:
        """``count`` round trips of a small message to the peer's agent, after two untimed ones."""
        try:
            return _ping(peer, port, count)
        except (OSError, ValueError) as exc:
            return {"error": _why(exc)}

    def ring(
        self, token: str, index: int, size: int, peer: str, port: int, sizes: Sequence[int], repeats: int
    ) -> dict[str, Any]:
        """This host's part of a ring all-reduce over ``size`` agents (``peer`` is the next one): for each buffer
        size, one warm-up and ``repeats`` timed all-reduces; also the sum's check (every element must equal the
        sum of the ranks' values, 1 + 2 + ... + size)."""
        try:
            return self._ring(bytes.fromhex(token), index, size, peer, port, sizes, repeats)
        except (OSError, ValueError, TimeoutError) as exc:
            return {"error": _why(exc)}

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass

    # -- the server --

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="netcheck-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        keep = False
        try:
            conn.settimeout(30)
            op = _recv_exact(conn, 1)
            if op == b"B":
                _sink(conn)
            elif op == b"P":
                _echo(conn)
            elif op == b"R":
                token = _recv_exact(conn, _TOKEN)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._ring_cond:
                    self._rings[token] = conn
                    self._ring_cond.notify_all()
                keep = True
            elif op == b"C":
                self._control(conn)
        except (OSError, ValueError):
            pass
        finally:
            if not keep:
                conn.close()

    def _control(self, conn: socket.socket) -> None:
        """``--serve``'s control protocol: one JSON request per line, {"method": ..., "args": {...}}, one answer."""
        conn.settimeout(None)
        reader = conn.makefile("r", encoding="utf-8")
        for line in reader:
            request = json.loads(line)
            method = request.get("method")
            if method not in ("info", "bandwidth", "latency", "ring"):
                answer: dict[str, Any] = {"error": f"unknown method {method!r}"}
            else:
                answer = getattr(self, method)(**request.get("args", {}))
            conn.sendall((json.dumps(answer) + "\n").encode())

    # -- the ring all-reduce --

    def _ring(
        self, token: bytes, index: int, size: int, peer: str, port: int, sizes: Sequence[int], repeats: int
    ) -> dict[str, Any]:
        import numpy as np

        timeout = CALL_SLACK_S
        out = socket.create_connection((peer, port), timeout=CONNECT_TIMEOUT_S)
        out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out.sendall(b"R" + token)
        deadline = time.monotonic() + timeout
        with self._ring_cond:
            while token not in self._rings:
                left = deadline - time.monotonic()
                if left <= 0:
                    out.close()
                    raise TimeoutError(f"the previous host of the ring did not connect within {timeout:g} s")
                self._ring_cond.wait(left)
            inc = self._rings.pop(token)
        sender = _Sender(out)
        try:
            out.settimeout(timeout)
            inc.settimeout(timeout)
            times, checks = [], []
            for nbytes in sizes:
                buf = np.empty(max(1, int(nbytes) // 4), dtype=np.float32)
                runs = []
                for r in range(repeats + 1):
                    buf.fill(index + 1)
                    started = time.perf_counter()
                    _ring_allreduce(buf, size, index, inc, sender)
                    if r:  # the first is a warm-up
                        runs.append(time.perf_counter() - started)
                times.append(runs)
                checks.append(bool(buf[0] == buf[-1] == size * (size + 1) / 2))
            return {"times_s": times, "sum_ok": all(checks)}
        finally:
            sender.close()
            out.close()
            inc.close()


class _Sender:
    """A thread that sends what it is given on one socket, so a ring step sends and receives at once."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.jobs: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        threading.Thread(target=self._run, name="netcheck-send", daemon=True).start()

    def send(self, data: memoryview) -> threading.Event:
        done = threading.Event()
        self.jobs.put((data, done))
        return done

    def close(self) -> None:
        self.jobs.put(None)

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            data, done = job
            try:
                if self.error is None:
                    self.sock.sendall(data)
            except OSError as exc:
                self.error = exc
            done.set()


def _ring_allreduce(buf, n: int, i: int, inc: socket.socket, sender: _Sender) -> None:
    """Sum ``buf`` over the ring in place: n−1 reduce-scatter steps, then n−1 all-gather steps."""
    import numpy as np

    chunks = np.array_split(buf, n)
    scratch = np.empty(max(len(c) for c in chunks), dtype=buf.dtype)

    def step(send_chunk, recv_into) -> None:
        done = sender.send(memoryview(send_chunk).cast("B"))
        _recv_into(inc, memoryview(recv_into).cast("B"))
        if not done.wait(CALL_SLACK_S) or sender.error is not None:
            raise sender.error or TimeoutError("the next host of the ring stopped taking data")

    for s in range(n - 1):
        incoming = chunks[(i - s - 1) % n]
        part = scratch[: len(incoming)]
        step(chunks[(i - s) % n], part)
        incoming += part
    for s in range(n - 1):
        step(chunks[(i + 1 - s) % n], chunks[(i - s) % n])


def _send_bulk(peer: str, port: int, nbytes: int, cap_s: float) -> dict[str, Any]:
    payload = memoryview(bytes(_CHUNK))
    with socket.create_connection((peer, port), timeout=CONNECT_TIMEOUT_S) as s:
        s.sendall(b"B" + struct.pack("!d", cap_s))
        s.setblocking(False)
        sent, deadline = 0, time.monotonic() + cap_s + CALL_SLACK_S
        while sent < nbytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"sending to {peer} stalled")
            readable, writable, _ = select.select([s], [s], [], left)
            if readable:  # the receiver's cap is up: it answered early
                break
            if writable:
                try:
                    sent += s.send(payload[: min(_CHUNK, nbytes - sent)])
                except BlockingIOError:
                    continue
        s.setblocking(True)
        s.settimeout(max(1.0, deadline - time.monotonic()))
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        report = json.loads(_read_line(s))
    seconds, received = report["seconds"], report["bytes"]
    gbit = received * 8 / seconds / 1e9 if seconds > 0 and received > 0 else None
    return {"bytes": received, "seconds": seconds, "capped": report["capped"], "gbit_per_s": gbit}


def _sink(conn: socket.socket) -> None:
    """The receiving end of a bulk transfer: counts bytes from the first one's arrival to the last one's, stops at the
    sender's cap, answers with what it measured, then drains what is still on the way."""
    (cap_s,) = struct.unpack("!d", _recv_exact(conn, 8))
    buf = bytearray(2**20)
    first_at = last_at = None
    first = total = 0
    capped = False
    conn.settimeout(cap_s + CALL_SLACK_S)
    while True:
        n = conn.recv_into(buf)
        if not n:
            break
        now = time.perf_counter()
        if first_at is None:
            first_at, first = now, n
        total += n
        last_at = now
        if now - first_at >= cap_s:
            capped = True
            break
    seconds = (last_at - first_at) if first_at is not None else 0.0
    report = {"bytes": total - first, "seconds": seconds, "capped": capped}  # bytes that arrived after the first read
    conn.sendall((json.dumps(report) + "\n").encode())
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(CALL_SLACK_S)
    while conn.recv_into(buf):  # closing with unread data would reset the connection and lose the answer
        pass


def _ping(peer: str, port: int, count: int) -> dict[str, Any]:
    message = bytes(_PING_BYTES)
    with socket.create_connection((peer, port), timeout=CONNECT_TIMEOUT_S) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"P")
        rtts = []
        for k in range(count + 2):
            started = time.perf_counter()
            s.sendall(message)
            _recv_exact(s, _PING_BYTES)
            if k >= 2:
                rtts.append(time.perf_counter() - started)
    return {"rtts_s": rtts, "median_s": statistics.median(rtts) if rtts else None}


def _echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        try:
            data = _recv_exact(conn, _PING_BYTES)
        except ValueError:  # the client closed
            return
        conn.sendall(data)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    _recv_into(s, memoryview(buf))
    return bytes(buf)


def _recv_into(s: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        k = s.recv_into(view[got:])
        if not k:
            raise ValueError("the connection closed early")
        got += k


def _read_line(s: socket.socket) -> str:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            raise ValueError("the connection closed before the answer")
        data += chunk
    return data.decode()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out ({exc})" if str(exc) and str(exc) != "timed out" else "timed out"
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"


def serve(bind: str = "0.0.0.0", port: int = DEFAULT_PORT, serve_for_s: float | None = None) -> None:
    """``--serve``: this host's agent until interrupted (or for ``serve_for_s``)."""
    agent = Agent(bind, port)
    print(f"netcheck agent on {socket.gethostname()} listening at {bind}:{agent.port}", flush=True)
    try:
        time.sleep(serve_for_s) if serve_for_s else threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        agent.close()


# --- reaching the agents --------------------------------------------------------------------------------------------


class Fleet:
    """The agents of one check, one per host, in host order; ``call`` runs methods on several at once."""

    hosts: list[dict[str, Any]]

    def call(self, calls: list[tuple[int, str, dict[str, Any]]], timeout_s: float) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TcpFleet(Fleet):
    """Agents started with ``--serve``, reached over their control connection."""

    def __init__(self, hosts: Sequence[str], default_port: int = DEFAULT_PORT, timeout_s: float = 10.0) -> None:
        self._socks: list[socket.socket] = []
        self._locks: list[threading.Lock] = []
        self.hosts = []
        for spec in hosts:
            host, port = _host_port(spec, default_port)
            try:
                s = socket.create_connection((host, port), timeout=timeout_s)
            except OSError as exc:
                self.close()
                raise ConnectionError(
                    f"no netcheck agent answers at {host}:{port} ({_why(exc)}); start one there with "
                    f"`python -m scaletrain.netcheck --serve --port {port}`"
                ) from None
            s.sendall(b"C")
            self._socks.append(s)
            self._locks.append(threading.Lock())
            self.hosts.append({"address": host, "port": port})
        infos = self.call([(i, "info", {}) for i in range(len(self.hosts))], timeout_s)
        for h, i in zip(self.hosts, infos, strict=True):
            h.update(hostname=i.get("hostname"), node_id=None)

    def call(self, calls, timeout_s):
        def one(c):
            i, method, args = c
            with self._locks[i]:
                s = self._socks[i]
                s.settimeout(timeout_s)
                try:
                    s.sendall((json.dumps({"method": method, "args": args}) + "\n").encode())
                    return json.loads(_read_line(s))
                except (OSError, ValueError) as exc:
                    return {"error": f"the agent at {self.hosts[i]['address']} did not answer ({_why(exc)})"}

        with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
            return list(pool.map(one, calls))

    def close(self):
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass


class RayFleet(Fleet):
    """One agent actor on each live node of the connected Ray cluster, pinned to it by node affinity and reserving
    nothing (num_cpus=0), so the check runs even while the cluster's CPUs and GPUs are taken."""

    def __init__(self, node_ids: Sequence[str] | None = None, timeout_s: float = 60.0) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if node_ids is None:  # every live node, in the order of their addresses
            alive = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources")]
            node_ids = [n["NodeID"] for n in sorted(alive, key=lambda n: _address_key(n["NodeManagerAddress"]))]
        remote = ray.remote(Agent)
        self.actors = [
            remote.options(
                num_cpus=0,
                max_concurrency=4,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote()
            for node_id in node_ids
        ]
        infos = self._get([a.info.remote() for a in self.actors], timeout_s)
        missing = [node_ids[i][:8] for i, info in enumerate(infos) if "error" in info]
        if missing:
            self.close()
            raise ConnectionError(
                f"the netcheck agent did not start on Ray node(s) {', '.join(missing)} within {timeout_s:g} s "
                f"({next(i['error'] for i in infos if 'error' in i)})"
            )
        self.hosts = infos

    def call(self, calls, timeout_s):
        refs = [getattr(self.actors[i], method).remote(**args) for i, method, args in calls]
        return self._get(refs, timeout_s)

    @staticmethod
    def _get(refs, timeout_s):
        import ray

        deadline = time.monotonic() + timeout_s
        out = []
        for ref in refs:
            try:
                out.append(ray.get(ref, timeout=max(0.1, deadline - time.monotonic())))
            except Exception as exc:  # noqa: BLE001  (a dead node or actor, a timeout: reported, not raised)
                lines = [line for line in str(exc).strip().splitlines() if line.strip()]
                out.append({"error": f"{type(exc).__name__}: {(lines or [''])[0][:200]}"})
        return out

    def close(self):
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass


def _address_key(address: str) -> tuple:
    try:
        ip = ipaddress.ip_address(address)
        return (0, ip.version, int(ip))
    except ValueError:
        return (1, 0, address)


def _host_port(spec: str, default_port: int) -> tuple[str, int]:
    spec = spec.strip()
    if spec.startswith("["):  # [v6]:port
        host, _, rest = spec[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, default_port


# --- the measurements -----------------------------------------------------------------------------------------------


@dataclass
class Options:
    nbytes: int = DEFAULT_BYTES
    cap_s: float = DEFAULT_CAP_S
    pings: int = DEFAULT_PINGS
    sizes: tuple[int, ...] = DEFAULT_SIZES
    repeats: int = DEFAULT_REPEATS
    ratio: float = DEFAULT_RATIO
    expect_gbit: float | None = None


def rounds(n: int) -> list[list[tuple[int, int]]]:
    """Every pair of ``n`` hosts exactly once, in rounds where each host is in at most one pair (circle method)."""
    ids: list[int | None] = list(range(n)) + ([None] if n % 2 else [])
    m = len(ids)
    out = []
    for _ in range(m - 1):
        pairs = [(ids[k], ids[m - 1 - k]) for k in range(m // 2)]
        out.append([(min(a, b), max(a, b)) for a, b in pairs if a is not None and b is not None])
        ids = [ids[0], ids[-1], *ids[1:-1]]
    return [r for r in out if r]


@dataclass
class Link:
    """One pair of hosts: the bandwidth each way and the median round trip; ``error`` when it could not be timed."""

    a: int
    b: int
    a_to_b_gbit: float | None = None
    b_to_a_gbit: float | None = None
    rtt_s: float | None = None
    error: str | None = None

    @property
    def gbit(self) -> float:
        """The slower direction (what an all-reduce, which uses both, gets); 0 when it could not be measured."""
        ways = [self.a_to_b_gbit, self.b_to_a_gbit]
        return 0.0 if self.error or any(w is None for w in ways) else min(ways)


def measure(fleet: Fleet, opts: Options) -> dict[str, Any]:
    """Every pair's bandwidth and round trips, then the all-reduce and its α-β fit; the report with its verdict."""
    started = time.monotonic()
    hosts = fleet.hosts
    n = len(hosts)
    links: dict[tuple[int, int], Link] = {}
    transfer_s = opts.cap_s + CALL_SLACK_S
    for pairs in rounds(n):
        for pair in pairs:
            links[pair] = Link(*pair)
        for src, dst in ((0, 1), (1, 0)):  # each way, all pairs of the round at once
            calls = [
                (
                    p[src],
                    "bandwidth",
                    {
                        "peer": hosts[p[dst]]["address"],
                        "port": hosts[p[dst]]["port"],
                        "nbytes": opts.nbytes,
                        "cap_s": opts.cap_s,
                    },
                )
                for p in pairs
            ]
            for p, got in zip(pairs, fleet.call(calls, transfer_s), strict=True):
                if "error" in got:
                    links[p].error = (
                        links[p].error or f"{_label(hosts[p[src]])} -> {_label(hosts[p[dst]])}: {got['error']}"
                    )
                else:
                    setattr(links[p], "a_to_b_gbit" if src == 0 else "b_to_a_gbit", got["gbit_per_s"])
        calls = [
            (p[0], "latency", {"peer": hosts[p[1]]["address"], "port": hosts[p[1]]["port"], "count": opts.pings})
            for p in pairs
        ]
        for p, got in zip(pairs, fleet.call(calls, CALL_SLACK_S + opts.pings), strict=True):
            if "error" in got:
                links[p].error = links[p].error or f"{_label(hosts[p[0]])} -> {_label(hosts[p[1]])}: {got['error']}"
            else:
                links[p].rtt_s = got["median_s"]
    allreduce = run_allreduce(fleet, opts) if n >= 2 else None
    report = judge(hosts, list(links.values()), allreduce, opts.expect_gbit, opts.ratio)
    report["seconds"] = round(time.monotonic() - started, 3)
    report["options"] = asdict(opts)
    return report


def run_allreduce(fleet: Fleet, opts: Options) -> dict[str, Any]:
    """A ring all-reduce over every host at each size; the slowest host's median per size and the α-β fit."""
    from scaletrain.scaling.model import fit_alpha_beta, ring_allreduce_factor

    hosts = fleet.hosts
    n = len(hosts)
    token = secrets.token_hex(_TOKEN)
    # Generous: each agent gives up on a ring step its neighbour stalls for CALL_SLACK_S, and answers with why.
    calls = [
        (
            i,
            "ring",
            {
                "token": token,
                "index": i,
                "size": n,
                "peer": hosts[(i + 1) % n]["address"],
                "port": hosts[(i + 1) % n]["port"],
                "sizes": list(opts.sizes),
                "repeats": opts.repeats,
            },
        )
        for i in range(n)
    ]
    answers = fleet.call(calls, CALL_SLACK_S * (2 * n) * len(opts.sizes) * (opts.repeats + 1))
    failed = [(i, a["error"]) for i, a in enumerate(answers) if "error" in a]
    if failed:
        i, why = failed[0]
        return {"error": f"{_label(hosts[i])}: {why}", "world_size": n, "sizes_bytes": list(opts.sizes)}
    medians = [max(statistics.median(a["times_s"][k]) for a in answers) for k in range(len(opts.sizes))]
    fit = fit_alpha_beta(opts.sizes, medians, n)
    largest = opts.sizes[-1]
    return {
        "world_size": n,
        "sizes_bytes": list(opts.sizes),
        "median_time_s": medians,
        "alpha_s": fit.alpha_s,
        "beta_s_per_byte": fit.beta_s_per_byte,
        "bandwidth_gbit_per_s": fit.bandwidth_gbit_per_s,
        # what the largest buffer alone moved: its bytes on each link over its time (no α subtracted)
        "largest_gbit_per_s": ring_allreduce_factor(n) * largest * 8 / medians[-1] / 1e9,
        "sum_ok": all(a.get("sum_ok") for a in answers),
    }


# --- the verdict ----------------------------------------------------------------------------------------------------


@dataclass
class HostFigures:
    index: int
    gbit: float  # its best pair's bandwidth: its own link carries at least this
    rtt_s: float | None  # its best pair's round trip
    unreachable: bool
    reasons: list[str] = field(default_factory=list)


def host_figures(n: int, links: Sequence[Link]) -> list[HostFigures]:
    out = []
    for i in range(n):
        mine = [link for link in links if i in (link.a, link.b)]
        rtts = [link.rtt_s for link in mine if link.rtt_s is not None and not link.error]
        out.append(
            HostFigures(
                index=i,
                gbit=max((link.gbit for link in mine), default=0.0),
                rtt_s=min(rtts) if rtts else None,
                unreachable=bool(mine) and all(link.error for link in mine),
            )
        )
    return out


def judge(
    hosts: Sequence[dict[str, Any]],
    links: Sequence[Link],
    allreduce: dict[str, Any] | None = None,
    expect_gbit: float | None = None,
    ratio: float = DEFAULT_RATIO,
) -> dict[str, Any]:
    """Which hosts are slow, and the one-sentence verdict; the whole report (JSON-able)."""
    n = len(hosts)
    figures = host_figures(n, links)
    floor = expect_gbit * (1 - EXPECT_TOLERANCE) if expect_gbit else None
    for f in figures:
        others = [g for g in figures if g.index != f.index]
        if f.unreachable:
            f.reasons.append("could not be reached (" + _first_error(f.index, links) + ")")
            continue
        if n >= 3:
            reachable = [g.gbit for g in others if not g.unreachable]
            median = statistics.median(reachable) if reachable else 0.0
            if median > 0 and f.gbit < ratio * median:
                f.reasons.append(
                    f"its links carry {_gbit(f.gbit)}, {f.gbit / median:.0%} of the other hosts' median {_gbit(median)}"
                )
            rtts = [g.rtt_s for g in others if g.rtt_s is not None]
            if f.rtt_s is not None and rtts:
                typical = statistics.median(rtts)
                if f.rtt_s > RTT_FACTOR * typical and f.rtt_s - typical >= RTT_MIN_EXTRA_S:
                    f.reasons.append(f"its round trips take {_ms(f.rtt_s)} against the others' {_ms(typical)}")
        if floor is not None and f.gbit < floor and not any("links carry" in r for r in f.reasons):
            f.reasons.append(f"its links carry {_gbit(f.gbit)}, below the {expect_gbit:g} Gbit/s expected")
    slow = [f for f in figures if f.reasons]
    sentence = _sentence(hosts, links, figures, slow, allreduce, expect_gbit)
    return {
        "verdict": sentence,
        "ok": not slow,
        "slow": [{**_host_fields(hosts[f.index]), "gbit_per_s": f.gbit, "reasons": f.reasons} for f in slow],
        "hosts": [
            {**_host_fields(hosts[f.index]), "gbit_per_s": f.gbit, "rtt_s": f.rtt_s, "unreachable": f.unreachable}
            for f in figures
        ],
        "links": [
            {
                "a": _label(hosts[link.a]),
                "b": _label(hosts[link.b]),
                "a_to_b_gbit_per_s": link.a_to_b_gbit,
                "b_to_a_gbit_per_s": link.b_to_a_gbit,
                "rtt_s": link.rtt_s,
                "error": link.error,
            }
            for link in links
        ],
        "allreduce": allreduce,
        "expect_gbit": expect_gbit,
        "ratio": ratio,
    }


def _sentence(hosts, links, figures, slow, allreduce, expect_gbit) -> str:
    n = len(hosts)
    fit = ""
    if allreduce and "error" not in allreduce:
        fit = (
            f"; a ring all-reduce over the {n} hosts fits α = {_us(allreduce['alpha_s'])} and "
            f"{_gbit(allreduce['bandwidth_gbit_per_s'])}"
        )
    elif allreduce:
        fit = f"; the all-reduce failed ({allreduce['error']})"
    if n < 2:
        return f"network check: only one host ({_label(hosts[0]) if hosts else 'none'}), so no link to check"
    if slow:
        named = "; ".join(f"{_label(hosts[f.index])}: {' and '.join(f.reasons)}" for f in slow)
        if n == 2 and not any(f.unreachable for f in slow):
            named = (
                f"the link between {_label(hosts[0])} and {_label(hosts[1])} carries {_gbit(figures[0].gbit)}, below "
                f"the {expect_gbit:g} Gbit/s expected (with two hosts, which end is slow cannot be told)"
            )
        return f"network check: {len(slow)} of {n} hosts slow: {named}{fit}"
    speeds = [f.gbit for f in figures]
    rtts = [f.rtt_s for f in figures if f.rtt_s is not None]
    rtt = f", round trips {_span(rtts, 1e3, '.2g', 'ms')}" if rtts else ""
    how = "even" if n >= 3 else "one link"
    expect = f", at least the {expect_gbit:g} Gbit/s expected" if expect_gbit else ""
    return f"network check: no slow host among {n} ({how}: {_span(speeds, 1, '.3g', 'Gbit/s')}{expect}{rtt}){fit}"


def _span(values: Sequence[float], scale: float, fmt: str, unit: str) -> str:
    low, high = format(min(values) * scale, fmt), format(max(values) * scale, fmt)
    return f"{low} {unit}" if low == high else f"{low}–{high} {unit}"


def _first_error(i: int, links: Sequence[Link]) -> str:
    return next((link.error for link in links if i in (link.a, link.b) and link.error), "no answer")


def _host_fields(h: dict[str, Any]) -> dict[str, Any]:
    return {"address": h.get("address"), "hostname": h.get("hostname"), "node_id": h.get("node_id")}


def _label(h: dict[str, Any]) -> str:
    name, address = h.get("hostname"), h.get("address")
    return f"{address} ({name})" if name and name != address else str(address)


def _gbit(v: float) -> str:
    return f"{v:.3g} Gbit/s"


def _ms(s: float) -> str:
    return f"{s * 1e3:.2g} ms"


def _us(s: float) -> str:
    return f"{s * 1e6:.3g} µs"


# --- entry points ---------------------------------------------------------------------------------------------------


def check(fleet: Fleet, opts: Options, json_path: Path | None = None) -> dict[str, Any]:
    try:
        report = measure(fleet, opts)
    finally:
        fleet.close()
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def check_ray(opts: Options, json_path: Path | None = None, start_timeout_s: float = 60.0) -> dict[str, Any]:
    """The check over every live node of the Ray cluster this process is connected to."""
    return check(RayFleet(timeout_s=start_timeout_s), opts, json_path)


def preflight(job: Any) -> dict[str, Any] | None:
    """``preflight.network=true``: the check over the Ray cluster's nodes before the job (or sweep) starts; the
    verdict in the log and netcheck.json in the run directory. With ``preflight.network_stop=true`` a named host
    refuses the job (exit 2). The Ray connection is left open for the launcher, which uses it and closes it."""
    from scaletrain.errors import LaunchError
    from scaletrain.launchers import ray_cluster as cluster

    cfg = job.preflight
    launcher = job.launcher
    if launcher.name != "ray":
        log.warning(
            "preflight.network=true checks the nodes of a Ray cluster (launcher=ray); skipped for launcher=%s "
            "(run `python -m scaletrain.netcheck --hosts ...` against agents on the hosts instead)",
            launcher.name,
        )
        return None
    if launcher.address is None:
        log.info("preflight.network: the local Ray this job starts is one host: no link to check")
        return None
    cluster.connect(launcher.address, launcher.connect_timeout_s, launcher.job_runtime_env(), local_cpus=0)
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log.info("preflight.network: timing the links between the Ray cluster's nodes")
    try:
        report = check_ray(Options(expect_gbit=cfg.network_gbit), out / "netcheck.json", launcher.start_timeout_s)
    except ConnectionError as exc:
        raise LaunchError(f"preflight.network could not run: {exc}.") from None
    if report["ok"]:
        log.info("%s (netcheck.json)", report["verdict"])
    else:
        log.warning("%s (netcheck.json)", report["verdict"])
        if cfg.network_stop:
            raise LaunchError(
                f"{report['verdict']}; preflight.network_stop=true, so the job does not start (move the job off "
                "those hosts, or set preflight.network_stop=false to run anyway)."
            )
    return report


def _sizes(text: str) -> tuple[int, ...]:
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    out = []
    for part in text.split(","):
        part = part.strip().lower().removesuffix("b").removesuffix("i")
        mult = units.get(part[-1:], 1)
        out.append(int(float(part[:-1] if mult > 1 else part) * mult))
    return tuple(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m scaletrain.netcheck",
        description="Time the links between a job's hosts (every pair, and an all-reduce over all) in a few "
        "seconds, before an expensive allocation, and name any host much slower than the others.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--ray-address", help="check every node of this Ray cluster: HOST:6379, ray://HOST:10001, auto")
    where.add_argument("--hosts", help="comma-separated HOST[:PORT] of agents started with --serve")
    where.add_argument("--serve", action="store_true", help="run this host's agent (for --hosts) until interrupted")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"--serve's port, and --hosts' default ({DEFAULT_PORT})"
    )
    p.add_argument("--bind", default="0.0.0.0", help="--serve: the address to listen on (default all)")
    p.add_argument("--serve-for", type=float, default=None, metavar="S", help="--serve: stop after S seconds")
    p.add_argument("--expect-gbit", type=float, default=None, help="also name hosts slower than this (Gbit/s)")
    p.add_argument(
        "--ratio", type=float, default=DEFAULT_RATIO, help="name hosts below this share of the others' median (0.5)"
    )
    p.add_argument(
        "--bytes", type=_sizes, default=(DEFAULT_BYTES,), metavar="SIZE", help="per transfer and direction (4M)"
    )
    p.add_argument("--cap-s", type=float, default=DEFAULT_CAP_S, help="the most seconds one transfer takes (1)")
    p.add_argument("--pings", type=int, default=DEFAULT_PINGS, help="timed round trips per pair (20)")
    p.add_argument("--allreduce-sizes", type=_sizes, default=DEFAULT_SIZES, metavar="LIST", help="e.g. 16K,256K,2M")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timed all-reduces per size (3)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the whole report here")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to reach the cluster or agents")
    args = p.parse_args(argv)
    if args.expect_gbit is not None and args.expect_gbit <= 0:
        p.error("--expect-gbit must be positive")
    if not 0 < args.ratio < 1:
        p.error("--ratio must lie between 0 and 1")
    if len(args.allreduce_sizes) < 2 or min(args.allreduce_sizes) < 4 or args.repeats < 1:
        p.error("--allreduce-sizes needs two or more sizes of at least 4 bytes, and --repeats at least 1")
    if args.bytes[0] < _CHUNK or args.cap_s <= 0 or args.pings < 1:
        p.error(f"--bytes must be at least {_CHUNK // 1024}K, --cap-s positive and --pings at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.bind, args.port, args.serve_for)
        return 0
    opts = Options(
        nbytes=args.bytes[0],
        cap_s=args.cap_s,
        pings=args.pings,
        sizes=tuple(args.allreduce_sizes),
        repeats=args.repeats,
        ratio=args.ratio,
        expect_gbit=args.expect_gbit,
    )
    try:
        if args.hosts:
            fleet: Fleet = TcpFleet([h for h in args.hosts.split(",") if h.strip()], args.port, args.connect_timeout)
        else:
            from scaletrain.errors import ScaletrainError
            from scaletrain.launchers import ray_cluster as cluster

            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                cluster.connect(args.ray_address, args.connect_timeout, {}, local_cpus=0)
            except ScaletrainError as exc:
                raise ConnectionError(
                    str(exc)
                    .replace("launcher.address", "--ray-address")
                    .replace("launcher.connect_timeout_s", "--connect-timeout")
                ) from None
            fleet = RayFleet(timeout_s=max(60.0, args.connect_timeout))
        report = check(fleet, opts, args.json)
    except ConnectionError as exc:
        print(f"netcheck: error: {exc}", file=sys.stderr)
        return 2
    print(report["verdict"], flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
