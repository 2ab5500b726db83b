"""The agent on each host: a TCP server (bulk sink, echo, ring links, and the control protocol of ``--serve``) and
the client-side measurements it runs when the coordinator asks (a bulk transfer, round trips, its part of a ring
all-reduce).

Self-contained on purpose: it imports nothing of scaletrain (the standard library, and NumPy for the ring), so Ray
can ship it to hosts by value (``cli._ship_agent_by_value``).
"""

from __future__ import annotations

import json
import queue
import select
import socket
import statistics
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any

DEFAULT_PORT = 29499  # --serve's port (an agent's one port: control, bulk, ping and ring connections)
CONNECT_TIMEOUT_S = 5.0
CALL_SLACK_S = 15.0  # on top of a call's own work: how long the coordinator waits for an agent's answer

_CHUNK = 256 * 2**10
_PING_BYTES = 64
_TOKEN = 16  # bytes of a ring connection's token


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
