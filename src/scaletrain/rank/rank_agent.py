"""A SLURM task's agent: with the hang watchdog on, each srun task stays the small parent of its rank's worker.

Every agent publishes its worker's process state (running, sleeping, stopped, ...) beside the worker's beacon in
the run directory's beacon folder, which every node sees (the checkpoints need a shared disk anyway), and dumps
its worker's stack when asked there. The agent of rank 0 is also the judge: it runs the watchdog over every
rank's beacon and state, writes the hang report and ends its task with ExitCode.HUNG, upon which srun
(``--kill-on-bad-exit``) ends every other task; the batch script then restarts the ranks (``max_restarts``).

Signals SLURM sends to the step (the stop signal, SIGTERM) reach the worker itself, as they reach every process
of the step; the agent forwards them too, in case the cluster signals only each task's first process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from scaletrain.common.watchdog import (
    STACK_WAIT_S,
    StackDump,
    Watchdog,
    collect_stacks,
    process_state,
    request_stack,
)
from scaletrain.contract import atomic, failure
from scaletrain.contract.beacon import PUBLISH_EVERY_S, Position, read_all
from scaletrain.contract.exit_codes import ExitCode
from scaletrain.contract.rank_env import BEACON_DIR

POLL_S = 0.25
DUMP_REQUEST = "dump_request"  # written by the judge: every agent then dumps its worker's stack
HUNG_MARKER = "hung"  # written by the judge beside the beacons: the batch script's sign that the ranks hung
REPORTED_MARKER = "reported"  # written by the judge once the hang report holds the stacks
VERDICT_MARKER = "failed"  # written by the first agent whose worker failed, with the cause: said once


def state_path(beacon_dir: Path, rank: int) -> Path:
    return Path(beacon_dir) / f"state_rank_{rank}.json"


class SharedDirProbe:
    """The watchdog's view of ranks on several nodes through one shared directory: the workers' beacons and the
    agents' state files; stacks asked for with a request file that every agent watches."""

    def __init__(self, beacon_dir: Path, world_size: int, own_rank: int, own_pid: int) -> None:
        self.beacon_dir = Path(beacon_dir)
        self.world_size = world_size
        self.own = own_rank, own_pid  # the judge's own worker, which it signals itself

    def positions(self) -> dict[int, Position]:
        return read_all(self.beacon_dir)

    def refresh(self) -> None:
        pass  # the shared directory is read when asked: never behind

    def failures(self) -> dict[int, failure.Note]:
        return failure.read_all(self.beacon_dir)

    def _agents(self) -> dict[int, dict]:
        found = {}
        for rank in range(self.world_size):
            try:
                found[rank] = json.loads(state_path(self.beacon_dir, rank).read_text())
            except (OSError, ValueError):
                continue
        return found

    def states(self) -> dict[int, str]:
        now = time.time()
        # an agent that stopped writing is gone with its node: its worker's state is unknown
        return {
            rank: agent["state"] if now - agent["updated_unix_s"] < 5 * PUBLISH_EVERY_S else "agent silent"
            for rank, agent in self._agents().items()
        }

    def stacks(self, states: dict[int, str]) -> dict[int, str]:
        (self.beacon_dir / DUMP_REQUEST).write_text(str(time.time()))
        rank, pid = self.own
        _dump_stack(pid, states.get(rank) == "stopped", self.beacon_dir / f"stack_rank_{rank}.txt")
        return collect_stacks(self.beacon_dir, list(range(self.world_size)), STACK_WAIT_S + 2 * POLL_S, states)

    def placeholders(self) -> dict[int, dict]:
        return {rank: {"host": a["host"], "pid": a["pid"]} for rank, a in self._agents().items()}


def run(
    argv: list[str],
    env: dict[str, str],
    beacon_dir: Path,
    rank: int,
    world_size: int,
    timeout_s: float | None,
    forward: tuple[int, ...],
    report_dir: Path,
) -> int:
    """Run the worker as a child until it exits (its exit code) or, on rank 0, until the job hangs."""
    beacon_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(argv, env={**env, BEACON_DIR: str(beacon_dir)})  # where this agent watches
    for sig in forward:
        signal.signal(sig, lambda signum, frame: _send(proc.pid, signum))
    probe = SharedDirProbe(beacon_dir, world_size, rank, proc.pid)

    def found(report) -> None:
        """Said and written before the stacks are asked for: a rank continued for its stack may crash, and srun
        then ends this task too before the stacks are in."""
        print(f"scaletrain: {report.sentence()}", file=sys.stderr, flush=True)
        report.write(report_dir)
        (beacon_dir / HUNG_MARKER).write_text(report.sentence() + "\n")

    watchdog = Watchdog(probe, timeout_s, on_found=found) if rank == 0 else None
    request = beacon_dir / DUMP_REQUEST
    answered = _mtime(request)
    host = socket.gethostname()
    while True:
        try:
            code = proc.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        state = process_state(proc.pid)
        _write_state(beacon_dir, rank, {"rank": rank, "host": host, "pid": proc.pid, "state": state,
                                        "updated_unix_s": time.time()})  # fmt: skip
        if _mtime(request) > answered:
            answered = _mtime(request)
            _dump_stack(proc.pid, state == "stopped", beacon_dir / f"stack_rank_{rank}.txt")
        report = watchdog.check() if watchdog else None
        if report is not None:
            return _hung(report, proc, report_dir, beacon_dir)
    _write_state(beacon_dir, rank, {"rank": rank, "host": host, "pid": proc.pid, "state": "exited",
                                    "updated_unix_s": time.time()})  # fmt: skip
    if code != 0 and watchdog is None and (beacon_dir / HUNG_MARKER).exists():
        # A worker continued for its stack can fail at once (TensorFlow's peers time out); srun would then end every
        # task, the judge too, before its report holds the stacks: give the judge that long first.
        _await(beacon_dir / REPORTED_MARKER, STACK_WAIT_S + 2 * POLL_S + 5)
    if code != 0 and watchdog is not None:  # a frozen peer makes this rank fail: blame the peer
        report = watchdog.blame_on_failure()
        if report is not None:
            return _hung(report, proc, report_dir, beacon_dir)
    if code != 0:
        _say_cause(beacon_dir, world_size)
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


def _say_cause(beacon_dir: Path, world_size: int) -> None:
    """The first agent whose worker failed names the cause from the ranks' notes (srun then ends the other tasks,
    so their agents may never get here): the culprit's note is on disk before a peer can fail because of it."""
    culprit = failure.cause(failure.read_all(beacon_dir))
    if culprit is None:
        return
    try:
        fd = os.open(beacon_dir / VERDICT_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return  # another agent said it
    sentence = failure.verdict(culprit, list(range(world_size)))
    with os.fdopen(fd, "w") as f:
        f.write(sentence + "\n")
    print(f"scaletrain: job failed: {sentence}", file=sys.stderr, flush=True)


def _dump_stack(pid: int, stopped: bool, stack_file: Path, wait_s: float = 2.0) -> None:
    """The worker's stack into its file; a stopped worker is continued for that and stopped again once it wrote it,
    so that it does not run on (and fail, ending the step) while the judge still gathers the report."""
    request_stack(pid, stopped)
    if not stopped:
        return
    deadline = time.monotonic() + wait_s
    dump = StackDump(stack_file)
    while not dump.whole() and time.monotonic() < deadline:
        time.sleep(StackDump.POLL_S)
    _send(pid, signal.SIGSTOP)


def _hung(report, proc: subprocess.Popen, report_dir: Path, beacon_dir: Path) -> int:
    """The report again, now with the stacks; the marker tells the batch script (srun's own exit code is the
    highest of its tasks', and the others are killed next)."""
    report.write(report_dir)
    (beacon_dir / HUNG_MARKER).write_text(report.sentence() + "\n")
    (beacon_dir / REPORTED_MARKER).touch()
    _send(proc.pid, signal.SIGKILL)
    proc.wait()
    return ExitCode.HUNG  # srun (--kill-on-bad-exit) ends every other rank


def _write_state(beacon_dir: Path, rank: int, state: dict) -> None:
    path = state_path(beacon_dir, rank)
    try:
        atomic.write(path, json.dumps(state))
    except OSError:
        pass  # the judge then sees this agent as silent


def _await(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(POLL_S)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
