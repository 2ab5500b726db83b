"""The hang watchdog: reads the ranks' beacons, notices when no rank advances, and names the rank(s) the others
wait for, with every rank's Python stack, in ``hang_report.json`` and ``hang_report.md``.

Which ranks are to blame, in order of evidence: a process the kernel has stopped (SIGSTOP, a debugger); a rank
whose beacon went stale (its process cannot run Python: frozen, or a native call holding the interpreter); else
the ranks that got least far (step, then phase): the others sit in a collective waiting for them.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from scaletrain.contract import atomic, failure, jsonfile
from scaletrain.contract.beacon import PUBLISH_EVERY_S, Position, read_all

AUTO_FLOOR_S = 120.0
AUTO_STEPS = 20  # the automatic timeout: this many of the slowest steps seen, at least AUTO_FLOOR_S
# Before any rank trained a step (imports, data set-up, compiling, the first collective may take minutes), a job
# whose training loop has begun is judged hung only after this long with no step at all, or hang_timeout_s when
# that is longer. Ranks that never report steps (a script's, a function's that does not) are never judged by it.
FIRST_STEP_TIMEOUT_S = 1800.0
LOOP_PHASES = ("data", "compute", "communication", "checkpoint", "validation")
STALE_AFTER_S = 5 * PUBLISH_EVERY_S
DUMP_SIGNAL = signal.SIGQUIT  # the worker dumps every thread's stack on it (faulthandler), as a JVM does
STACK_WAIT_S = 5.0  # a busy or just-continued rank may take seconds to dump
NO_STACK = "(no stack: the rank did not answer the dump signal)"
EXITED_STACK = "(no stack: the rank had already exited)"
EXITED = ("gone", "zombie", "exited")  # process states of a rank that no longer runs


@dataclass
class HangReport:
    waited_s: float  # how long no rank had advanced
    timeout_s: float
    culprits: list[int]
    why: str  # what gave the culprits away
    positions: dict[int, dict] = field(default_factory=dict)
    states: dict[int, str] = field(default_factory=dict)
    stacks: dict[int, str] = field(default_factory=dict)

    def sentence(self) -> str:
        if not self.culprits:
            return (
                f"hang: no rank advanced for {self.waited_s:.0f} s (watchdog.hang_timeout_s={self.timeout_s:g}) and "
                "every rank is at the same place; see hang_report.md for each rank's stack."
            )
        named = "; ".join(self._describe(rank) for rank in self.culprits)
        others = sorted(set(self.positions) - set(self.culprits))
        waiting = f"rank(s) {', '.join(map(str, others))} wait for " if others else ""
        return (
            f"hang: no rank advanced for {self.waited_s:.0f} s (watchdog.hang_timeout_s={self.timeout_s:g}); "
            f"{waiting}{named} ({self.why}); stacks in hang_report.md."
        )

    def _describe(self, rank: int) -> str:
        p = self.positions.get(rank, {})
        state = self.states.get(rank, "unknown")
        return f"rank {rank} on {p.get('host', '?')} (pid {p.get('pid', '?')}, step {p.get('step', '?')}, phase " \
            f"{p.get('phase', '?')}, {state})"  # fmt: skip

    def write(self, run_dir: Path) -> list[Path]:
        paths = [Path(run_dir) / "hang_report.json", Path(run_dir) / "hang_report.md"]
        atomic.write(paths[0], jsonfile.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        header = "| rank | host | pid | step | phase | state |"
        lines = [f"# Hang report\n\n{self.sentence()}\n", header, "|---" * 6 + "|"]
        for rank in sorted(self.positions):
            p, state = self.positions[rank], self.states.get(rank)
            lines.append(f"| {rank} | {p['host']} | {p['pid']} | {p['step']} | {p['phase']} | {state} |")
        for rank in sorted(self.stacks):
            lines += ["", f"## Rank {rank}", "", "```", self.stacks[rank].rstrip(), "```"]
        atomic.write(paths[1], "\n".join(lines) + "\n")
        return paths


class RankProbe(Protocol):
    """What a launcher can see of its ranks: where they are, their process states, their stacks."""

    def positions(self) -> dict[int, Position]: ...

    def states(self) -> dict[int, str]: ...

    def stacks(self, states: dict[int, str]) -> dict[int, str]: ...

    def placeholders(self) -> dict[int, dict]:
        """What the launcher knows of each rank (host, pid) for a rank that never published a beacon."""
        ...

    def refresh(self) -> None:
        """Bring ``positions`` and ``states`` up to date before a verdict (a probe that relays them may lag)."""
        ...

    def failures(self) -> dict[int, failure.Note]:
        """The failure notes the ranks left (contract/failure.py): how each failed rank failed, by its own account."""
        ...


class LocalProbe:
    """The ranks this host started: beacons in one directory, process states from /proc, stacks by signal."""

    def __init__(self, beacon_dir: Path, pids: dict[int, int]) -> None:
        self.beacon_dir = Path(beacon_dir)
        self.pids = pids  # rank -> pid

    def positions(self) -> dict[int, Position]:
        return read_all(self.beacon_dir)

    def states(self) -> dict[int, str]:
        return {rank: process_state(pid) for rank, pid in self.pids.items()}

    def stacks(self, states: dict[int, str]) -> dict[int, str]:
        """Every rank's Python stack (all threads), dumped by the rank itself on DUMP_SIGNAL; a stopped rank is
        continued for that (the job is being ended anyway)."""
        for rank, pid in self.pids.items():
            request_stack(pid, states.get(rank) == "stopped")
        return collect_stacks(self.beacon_dir, list(self.pids), states=states)

    def placeholders(self) -> dict[int, dict]:
        return {rank: {"host": socket.gethostname(), "pid": pid} for rank, pid in self.pids.items()}

    def refresh(self) -> None:
        pass  # positions and states are read from this host's files and /proc when asked: never behind

    def failures(self) -> dict[int, failure.Note]:
        return failure.read_all(self.beacon_dir)


class Watchdog:
    """Checked from the launcher's supervision loop; reads the ranks' positions at most once a second."""

    def __init__(
        self, probe: RankProbe, timeout_s: float | None, on_found: Callable[[HangReport], None] | None = None
    ) -> None:
        self.probe = probe
        self.on_found = on_found  # called with the report before the stacks are asked for (that may take seconds)
        self.fixed_timeout_s = timeout_s
        self.slowest_step_s = 0.0
        self.started_unix_s = time.time()
        self._last: dict[int, Position] = {}
        self._next_read = 0.0

    @property
    def timeout_s(self) -> float:
        return self.fixed_timeout_s or max(AUTO_FLOOR_S, AUTO_STEPS * self.slowest_step_s)

    @property
    def first_step_timeout_s(self) -> float:
        return max(FIRST_STEP_TIMEOUT_S, self.timeout_s)

    def check(self) -> HangReport | None:
        """A report once no rank has advanced for the timeout, counted from the last step any rank reached (a frozen
        rank's own beacon may be older than that, or missing: it need not have published since); before the first
        step, once none came for FIRST_STEP_TIMEOUT_S since the attempt started."""
        now = time.time()
        if now < self._next_read:
            return None
        self._next_read = now + PUBLISH_EVERY_S
        positions = self.probe.positions()
        self._learn_step_time(positions)
        if not any(p.step >= 1 for p in positions.values()):
            waited_s = now - self.started_unix_s  # still starting up: imports, compiling, the first collective
            in_loop = any(p.phase in LOOP_PHASES for p in positions.values())
            return self.report(positions, waited_s) if in_loop and waited_s >= self.first_step_timeout_s else None
        waited_s = now - max(p.step_since_unix_s for p in positions.values())
        if waited_s < self.timeout_s:
            return None
        return self.report(positions, waited_s)

    def blame_on_failure(self) -> HangReport | None:
        """When a rank failed: a report if another rank is frozen, whose peers then fail (a collective timeout,
        TensorFlow's heartbeat) and would otherwise be blamed. An ordinary failure costs a look at the states only."""
        self.probe.refresh()
        positions = self.probe.positions()
        states = self.probe.states()
        culprits, why = diagnose(positions, states, time.time())
        if why not in ("stopped", "stale beacon"):
            return None
        waited_s = time.time() - max((p.step_since_unix_s for p in positions.values()), default=0)
        return self._report(positions, waited_s, states, culprits, why)

    def report(self, positions: dict[int, Position], waited_s: float) -> HangReport:
        """The verdict, judged on positions and states read again now (``positions`` decided that it is due)."""
        self.probe.refresh()
        positions = {**positions, **self.probe.positions()}
        states = self.probe.states()
        culprits, why = diagnose(positions, states, time.time())
        return self._report(positions, waited_s, states, culprits, why)

    def _report(
        self, positions: dict[int, Position], waited_s: float, states: dict[int, str], culprits: list[int], why: str
    ) -> HangReport:
        """The report, with every rank's stack: only taken once a hang is certain (it signals every rank)."""
        known = {rank: asdict(p) for rank, p in positions.items()}
        for rank, seen in self.probe.placeholders().items():  # a rank frozen before its first beacon
            known.setdefault(rank, {"rank": rank, "step": "?", "phase": "no beacon yet", **seen})
        report = HangReport(
            waited_s=waited_s, timeout_s=self.timeout_s, culprits=culprits, why=why, positions=known, states=states
        )
        if self.on_found is not None:
            self.on_found(report)
        report.stacks = self.probe.stacks(states)
        return report

    def _learn_step_time(self, positions: dict[int, Position]) -> None:
        for rank, p in positions.items():
            last = self._last.get(rank)
            if last is not None and p.step > last.step > 0:
                step_s = (p.step_since_unix_s - last.step_since_unix_s) / (p.step - last.step)
                self.slowest_step_s = max(self.slowest_step_s, step_s)
        self._last = positions


def request_stack(pid: int, stopped: bool) -> None:
    """Ask a rank for its stack (DUMP_SIGNAL); a stopped rank is continued so that it can answer."""
    _signal(pid, DUMP_SIGNAL)
    if stopped:
        _signal(pid, signal.SIGCONT)


class StackDump:
    """A rank's stack file as faulthandler writes it: thread by thread, straight to the file, with no end marker.
    It is whole once it names a frame and has stopped growing for ``SETTLED_S`` (read earlier, a report can hold
    a background thread and not the main one)."""

    POLL_S = 0.05
    SETTLED_S = 0.25

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = ""
        self._unchanged_since = time.monotonic()

    def whole(self) -> bool:
        text = read_text(self.path)
        if text != self.text:
            self.text, self._unchanged_since = text, time.monotonic()
        return "File " in text and text.endswith("\n") and time.monotonic() - self._unchanged_since >= self.SETTLED_S


def collect_stacks(
    beacon_dir: Path, ranks: list[int], wait_s: float = STACK_WAIT_S, states: dict[int, str] | None = None
) -> dict[int, str]:
    """The stacks the ranks dumped into ``beacon_dir``, waiting up to ``wait_s`` for them (not for ranks whose
    process had already exited, per ``states``)."""
    states = states or {}
    ranks = [rank for rank in ranks if states.get(rank) not in EXITED]
    deadline = time.monotonic() + wait_s
    dumps = {rank: StackDump(Path(beacon_dir) / f"stack_rank_{rank}.txt") for rank in ranks}
    stacks: dict[int, str] = {}
    while time.monotonic() < deadline and len(stacks) < len(ranks):
        for rank, dump in dumps.items():
            if rank not in stacks and dump.whole():
                stacks[rank] = dump.text
        time.sleep(StackDump.POLL_S)
    for rank, dump in dumps.items():  # at the deadline, a part of a stack says more than none
        if rank not in stacks and "File " in dump.text:
            stacks[rank] = dump.text
    gone = {rank: EXITED_STACK for rank, state in states.items() if state in EXITED}
    return {**gone, **{rank: stacks.get(rank, NO_STACK) for rank in ranks}}


def diagnose(positions: dict[int, Position], states: dict[int, str], now: float) -> tuple[list[int], str]:
    """(the ranks the others wait for, what gave them away)."""
    stopped = sorted(rank for rank, state in states.items() if state == "stopped")
    if stopped:
        return stopped, "stopped"
    stale = sorted(rank for rank, p in positions.items() if now - p.updated_unix_s > STALE_AFTER_S)
    if stale and len(stale) < len(positions):
        return stale, "stale beacon"
    if not positions:
        return [], "no beacons"
    lowest = min(p.order for p in positions.values())
    behind = sorted(rank for rank, p in positions.items() if p.order == lowest)
    if len(behind) == len(positions):
        return [], "every rank at the same place"
    return behind, "furthest behind"


def process_state(pid: int) -> str:
    """running, sleeping, stopped, zombie or gone, from /proc (Linux)."""
    try:
        code = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
    return {"R": "running", "S": "sleeping", "D": "waiting on I/O", "T": "stopped", "t": "stopped", "Z": "zombie"}.get(
        code, code
    )


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def read_text(path: Path) -> str:
    """The file's text, or "" when it cannot be read (not written yet, being replaced)."""
    try:
        return path.read_text()
    except OSError:
        return ""
