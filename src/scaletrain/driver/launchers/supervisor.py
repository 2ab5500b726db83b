"""Start a group of rank processes, stream their output with a rank prefix, stop them all when one fails."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from scaletrain.common.output import TAIL_LINES, RankOutput
from scaletrain.common.watchdog import HangReport, Watchdog
from scaletrain.contract import failure
from scaletrain.contract.errors import NonFiniteLossError
from scaletrain.contract.exit_codes import ExitCode
from scaletrain.rank.spec import RankSpec, rank_log_path

__all__ = [
    "TAIL_LINES",
    "Outcome",
    "Supervisor",
    "first_failure",
    "forward_interrupts",
    "hang_outcome",
    "run_attempts",
]

log = logging.getLogger("scaletrain")
T = TypeVar("T")


@dataclass
class Outcome:
    """How a group of ranks ended."""

    ok: bool
    interrupted: bool = False
    rank: int | None = None  # the first rank seen to fail
    returncode: int | None = None
    tail: list[str] = field(default_factory=list)
    lost: str | None = None  # why a rank vanished without an exit code (its Ray actor or node died)
    hang: HangReport | None = None  # the watchdog's finding, when the job hung rather than failed
    cause: str | None = None  # what ``rank`` raised and who ended because of it (the ranks' failure notes)

    def describe(self) -> str:
        if self.hang is not None:
            return self.hang.sentence()
        if self.cause is not None and self.lost is None:
            lines = "\n".join(f"    {line}" for line in self.tail) or "    (it printed nothing)"
            return f"{self.cause}; rank {self.rank}'s last lines of output:\n{lines}"
        if self.lost is not None:
            how = self.lost
        elif self.returncode is not None and self.returncode < 0:
            how = f"was killed by signal {signal.Signals(-self.returncode).name}"
        else:
            how = f"exited with code {self.returncode}"
        lines = "\n".join(f"    {line}" for line in self.tail) or "    (it printed nothing)"
        return f"rank {self.rank} {how}; its last lines of output:\n{lines}"


class _RankProcess:
    def __init__(self, rank: int, argv: list[str], env: dict[str, str], log_path: Path | None, lock: threading.Lock):
        self.rank = rank
        self.exited_at: float | None = None
        # Own session: a terminal's Ctrl-C reaches only the launcher, which stops the ranks in order.
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.output = RankOutput(rank, log_path, lock)
        self.pump = threading.Thread(target=self._pump, name=f"rank-{rank}-output", daemon=True)
        self.pump.start()

    @property
    def tail(self) -> list[str]:
        return list(self.output.tail)

    def _pump(self) -> None:
        try:
            while chunk := os.read(self.proc.stdout.fileno(), 65536):
                self.output.feed(chunk)
        finally:
            self.output.close()

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


class Supervisor:
    """One attempt of a job on this host: N rank processes watched together."""

    def __init__(self, stop_grace_s: float = 5.0, log_dir: Path | None = None, poll_s: float = 0.05) -> None:
        self.stop_grace_s = stop_grace_s
        self.log_dir = log_dir
        self.poll_s = poll_s
        self.ranks: list[_RankProcess] = []
        self.watchdog: Watchdog | None = None  # set by the launcher once every rank started (it needs their pids)
        self.report_dir: Path | None = None  # where a hang report goes
        self._lock = threading.Lock()
        self._interrupted = threading.Event()
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, rank: int, argv: list[str], env: dict[str, str]) -> None:
        self.start_spec(RankSpec(rank, argv, env, rank_log_path(self.log_dir, rank)))

    def start_spec(self, spec: RankSpec) -> None:
        """Start the rank ``spec`` describes; its output is relayed and kept in ``spec.log_path``."""
        self.ranks.append(_RankProcess(spec.rank, spec.argv, spec.env, spec.log_path, self._lock))

    def interrupt(self) -> None:
        """Safe from a signal handler: the wait loop notices and stops every rank."""
        self._interrupted.set()

    def wait(self) -> Outcome:
        """Block until every rank succeeded, one failed (the others are then stopped), or an interrupt."""
        while True:
            if self._interrupted.is_set():
                self.stop(signal.SIGINT)
                return Outcome(ok=False, interrupted=True)
            now = time.monotonic()
            for r in self.ranks:
                if r.exited_at is None and r.proc.poll() is not None:
                    r.exited_at = now
            failed = [r for r in self.ranks if r.exited_at is not None and r.proc.returncode != 0]
            if failed:
                # A frozen peer makes the healthy ranks fail (collective timeouts, TensorFlow's heartbeat): blame it.
                hang = self.watchdog.blame_on_failure() if self.watchdog else None
                if hang is not None:
                    return self._hung(hang)
                first = first_failure(failed, lambda r: r.exited_at, lambda r: r.proc.returncode < 0)
                notes = self.watchdog.probe.failures() if self.watchdog else {}
                self.stop(signal.SIGTERM)
                return self._failed(first, notes)
            hang = self.watchdog.check() if self.watchdog else None
            if hang is not None:
                return self._hung(hang)
            if all(r.exited_at is not None for r in self.ranks):
                self._join_pumps()
                return Outcome(ok=True)
            time.sleep(self.poll_s)

    def _failed(self, first: _RankProcess, notes: dict[int, failure.Note]) -> Outcome:
        """The attempt's end after a failure: the rank whose own failure came first by kind and by its clock (its
        note), else the first seen to fail; its exit code, unless it was only ended by the stop."""
        culprit = failure.cause(notes)
        if culprit is None or culprit.rank not in {r.rank for r in self.ranks}:
            return Outcome(False, rank=first.rank, returncode=first.proc.returncode, tail=first.tail)
        named = next(r for r in self.ranks if r.rank == culprit.rank)
        code = named.proc.returncode if named.proc.returncode > 0 else first.proc.returncode
        others = [r.rank for r in self.ranks if r.rank != culprit.rank]
        return Outcome(False, rank=named.rank, returncode=code, tail=named.tail,
                       cause=failure.verdict(culprit, others))  # fmt: skip

    def _hung(self, report: HangReport) -> Outcome:
        """Record the hang report, stop every rank, and end the attempt with ExitCode.HUNG."""
        outcome = hang_outcome(report, self.report_dir)
        self.stop(signal.SIGKILL)  # a hung rank may not get as far as its SIGTERM handler
        return outcome

    def stop(self, first_signal: int = signal.SIGTERM) -> None:
        """``first_signal`` to every live rank, SIGKILL after the grace period, then collect their output."""
        live = [r for r in self.ranks if r.proc.poll() is None]
        for r in live:
            r.signal_group(first_signal)
        deadline = time.monotonic() + self.stop_grace_s
        for r in live:
            try:
                r.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.signal_group(signal.SIGKILL)
        for r in self.ranks:
            r.proc.wait()
            r.signal_group(signal.SIGKILL)  # anything the rank itself started and left behind
        self._join_pumps()

    def _join_pumps(self) -> None:
        for r in self.ranks:
            r.pump.join(timeout=5)


def first_failure(failures: Iterable[T], seen_at: Callable[[T], float], by_signal: Callable[[T], bool]) -> T:
    """The failure that ends an attempt: the one seen first; of those seen at the same time, a rank killed by a
    signal (or lost) before one that exited with an error code, since a rank that lost its peer and then errors out
    is a consequence, not the cause. Among equals, the first in ``failures``."""
    return min(failures, key=lambda f: (seen_at(f), not by_signal(f)))


@contextmanager
def forward_interrupts(callback: Callable[[], None]) -> Iterator[None]:
    """Ctrl-C or SIGTERM to the launcher calls ``callback`` (it runs in a signal handler: set a flag) so that it
    stops every rank instead of dying and orphaning them; the previous handlers are back afterwards."""
    handler = lambda signum, frame: callback()  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def hang_outcome(report: HangReport, report_dir: Path | None) -> Outcome:
    """The attempt's end after a hang: the report written into ``report_dir``, exit code ExitCode.HUNG (the caller
    stops the ranks)."""
    if report_dir is not None:
        report.write(report_dir)
    rank = report.culprits[0] if report.culprits else None
    return Outcome(False, rank=rank, returncode=ExitCode.HUNG, hang=report)


def run_attempts(max_restarts: int, attempt: Callable[[int], Outcome], output_dir: str = "") -> int:
    """Run ``attempt(0)``, then restart it after failures up to ``max_restarts`` times; the job's exit code."""
    for number in range(max_restarts + 1):
        outcome = attempt(number)
        if outcome.ok:
            return 0
        if outcome.interrupted:
            log.error("interrupted: every rank was stopped")
            return ExitCode.INTERRUPTED
        if outcome.returncode == ExitCode.STOPPED:  # the ranks stopped on request after a checkpoint
            log.warning("stopped on request; continue with resume=true hydra.run.dir=%s", output_dir)
            return ExitCode.STOPPED
        log.error("job failed: %s", outcome.describe())
        if outcome.returncode in (2, NonFiniteLossError.exit_code):  # bad input, a diverged loss: a restart repeats it
            return outcome.returncode
        if outcome.hang is not None and number == max_restarts:
            return ExitCode.HUNG
        if number < max_restarts:
            log.warning("restarting all ranks from the last checkpoint (restart %d of %d)", number + 1, max_restarts)
    return 1
