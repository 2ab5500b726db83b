"""The Ray actor that hosts one rank: it runs the same worker process the local launcher would, on its node.

Imported on every node of the cluster, so it needs only the standard library, Ray and scaletrain's stdlib-only
watchdog helpers and rank contract (the node runs scaletrain's worker anyway). Its methods run one at a
time on the actor's main thread: the worker is started from that thread, which lives as long as the actor, so the
worker's parent-death signal fires exactly when the actor (or its node) dies.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from scaletrain.common.ports import PortReservation
from scaletrain.common.watchdog import EXITED_STACK, NO_STACK, collect_stacks, process_state, request_stack
from scaletrain.contract.failure import NOTE
from scaletrain.contract.rank_env import BEACON_DIR, RANK

CHUNK_BYTES = 256 * 1024
_EXIT_WITHOUT_EOF_S = 1.0  # a rank's own children may hold its stdout open after it exited
ORPHAN_GRACE_S = 5.0  # an orphaned rank gets this long after SIGTERM before SIGKILL


class RankActor:
    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._buf = bytearray()
        self._eof = False
        self._exited_at: float | None = None
        self._cond = threading.Condition()
        self._tmp: str | None = None
        self._beacons: Path | None = None  # this rank's beacon directory on this node, when the watchdog is on
        self._rank = 0
        self._heard_at = time.monotonic()  # the driver's last call (poll, dump_stack)
        self._ports: PortReservation | None = None

    def describe(self) -> dict:
        """Where this actor landed: node id and IP, the GPUs Ray gave it, and two free ports on its node (the
        rendezvous port if it hosts rank 0, and its own worker address, e.g. for TF_CONFIG)."""
        import ray

        # Held while this actor lives (it serves one attempt's rank), so nothing else on the node takes them
        # before the rank binds them, seconds later, once its framework is imported.
        self._ports = PortReservation("", 2)
        ports = self._ports.ports
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname(),  # how every launcher names a host (the beacons say the same)
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "free_port": ports[0],
            "worker_port": ports[1],
            "pid": os.getpid(),
        }

    def start(
        self,
        args: list[str],
        env: dict[str, str],
        job_file: str,
        job_json: str,
        watch: bool = False,
        orphan_after_s: float = 0.0,
    ) -> int:
        """Run ``python *args`` with this node's Python; the job file travels as text, so no shared disk is needed.
        ``watch``: the rank publishes its beacon into a directory on this node, which ``poll`` reads.
        ``orphan_after_s`` > 0: when the driver has not polled for that long (this node cut off from it, the driver
        gone without a word), stop the rank and end this actor, instead of training on alone until a collective
        times out or the cable is back."""
        self._tmp = tempfile.mkdtemp(prefix="scaletrain-rank-")
        local_job = os.path.join(self._tmp, "job.json")
        with open(local_job, "w") as f:
            f.write(job_json)
        argv = [sys.executable, *(local_job if a == job_file else a for a in args)]
        self._rank = int(env.get(RANK, "0"))
        if watch:
            self._beacons = Path(self._tmp) / "beacons"
            env = {**env, BEACON_DIR: str(self._beacons)}
        self._proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stop() reaches whatever it started
        )
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._reap, daemon=True).start()
        self._heard_at = time.monotonic()
        if orphan_after_s > 0:
            threading.Thread(target=self._stop_when_orphaned, args=(orphan_after_s,), daemon=True).start()
        return self._proc.pid

    def poll(self, wait_s: float) -> tuple[bytes, int | None, str, str]:
        """The output of the last ``wait_s`` (sooner when the rank exits or much has piled up); once all of it is
        read, the exit code; then the rank's beacon (JSON text, "" when none) and its process state, for the
        watchdog. Batching by time keeps the relay to a few calls a second however chatty the rank."""
        self._heard_at = time.monotonic()
        data, code = self._output(wait_s)
        return data, code, *self.position()

    def position(self) -> tuple[str, str]:
        """The rank's beacon as its file says now (JSON text, "" when none) and its process state: what the
        watchdog reads again right before it judges, so a verdict never rests on a relay that lags."""
        self._heard_at = time.monotonic()
        return self._beacon(), process_state(self._proc.pid)

    def failure_note(self) -> str:
        """The rank's failure note (scaletrain.contract.failure, JSON text), "" when it left none."""
        self._heard_at = time.monotonic()
        if self._beacons is None:
            return ""
        try:
            return (self._beacons / NOTE.format(rank=self._rank)).read_text()
        except OSError:
            return ""

    def dump_stack(self, stopped: bool) -> str:
        """The rank's Python stack, every thread, dumped by the rank itself on the watchdog's signal."""
        self._heard_at = time.monotonic()
        if self._beacons is None:
            return NO_STACK
        if self._proc.poll() is not None:
            return EXITED_STACK
        request_stack(self._proc.pid, stopped)
        return collect_stacks(self._beacons, [self._rank])[self._rank]

    def _beacon(self) -> str:
        if self._beacons is None:
            return ""
        for path in self._beacons.glob("rank_*.json"):
            try:
                return path.read_text()
            except OSError:
                return ""
        return ""

    def _output(self, wait_s: float) -> tuple[bytes, int | None]:
        with self._cond:
            self._cond.wait_for(
                lambda: len(self._buf) >= CHUNK_BYTES or self._eof or self._exited_at is not None, timeout=wait_s
            )
            data = bytes(self._buf[:CHUNK_BYTES])
            del self._buf[:CHUNK_BYTES]
            drained = not self._buf
            eof, exited_at = self._eof, self._exited_at
        if exited_at is None or not drained:
            return data, None
        if not eof and time.monotonic() - exited_at < _EXIT_WITHOUT_EOF_S:
            if not data:
                time.sleep(min(wait_s, 0.1))
            return data, None
        return data, self._proc.returncode

    def stop(self, first_signal: int, grace_s: float) -> int | None:
        """``first_signal`` to the rank's process group, SIGKILL after ``grace_s``; its exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(first_signal)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)  # the rank, if still there, and anything it left behind
        proc.wait()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return proc.returncode

    def _stop_when_orphaned(self, after_s: float) -> None:
        while self._proc.poll() is None:
            time.sleep(min(1.0, after_s / 4))
            if time.monotonic() - self._heard_at > after_s and self._proc.poll() is None:
                print(f"scaletrain: rank {self._rank}: no poll from the driver for {after_s:g} s (this node is cut "
                      "off from it, or it is gone): stopping the rank", file=sys.stderr, flush=True)  # fmt: skip
                self.stop(signal.SIGTERM, ORPHAN_GRACE_S)
                os._exit(1)  # this actor too: nobody will call it again, and Ray ends it only once it hears again

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def _read(self) -> None:
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self._cond:
                self._buf += chunk
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _reap(self) -> None:
        self._proc.wait()
        with self._cond:
            self._exited_at = time.monotonic()
            self._cond.notify_all()
