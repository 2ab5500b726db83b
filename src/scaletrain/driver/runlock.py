"""One live job per run directory: the driver holds a lock file in the run (and checkpoint) directory while its job
lives, and a second job aimed at the same directory is refused before anything starts.

The lock names its holder: host, pid and start time, or under SLURM the job id(s) it submitted (a requeued job keeps
its id, so it is never "another job"; its ranks never take the lock, the submitting driver did). A lock is stale,
and taken over with a line saying so, once its holder provably ended: a process on this host that is gone (or whose
pid now belongs to a younger process), or SLURM jobs that have all left the queue. A holder on another host cannot be
checked from here: the lock is then respected, and the sentence says how to remove it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scaletrain.contract import atomic
from scaletrain.contract.errors import ConfigError

log = logging.getLogger("scaletrain")

LOCK_NAME = ".scaletrain.lock"
# squeue keeps an ended job listed for MinJobAge (300 s by default) in one of these states; a requeued or preempted
# job that will run again is PENDING, REQUEUED, ... and still holds its directory.
SLURM_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"}


@dataclass(frozen=True)
class Holder:
    """Who holds a run directory."""

    host: str
    pid: int
    started_unix_s: float
    launcher: str
    slurm_job_ids: tuple[str, ...] = field(default=())  # once submitted: the lock lives as long as these jobs

    @classmethod
    def here(cls, launcher: str) -> Holder:
        return cls(socket.gethostname(), os.getpid(), time.time(), launcher)

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_unix_s))
        if self.slurm_job_ids:
            return f"SLURM job {', '.join(self.slurm_job_ids)} (submitted from {self.host} at {since})"
        return f"a {self.launcher} job, pid {self.pid} on {self.host}, started {since}"


def _read(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text())
        return Holder(**{**data, "slurm_job_ids": tuple(data.get("slurm_job_ids", ()))})
    except (OSError, ValueError, TypeError):
        return None  # half written by a holder that died mid-write, or damaged: nobody can hold it by it


def _write_new(path: Path, holder: Holder) -> bool:
    """Create the lock file holding ``holder``; False when one exists already (O_EXCL: one winner, however many)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(asdict(holder)) + "\n")
    return True


def _replace(path: Path, holder: Holder) -> None:
    atomic.write(path, json.dumps(asdict(holder)) + "\n")


def process_started_unix_s(pid: int) -> float | None:
    """When process ``pid`` on this host started (from /proc), or None when there is no such process."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))  # fmt: skip
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def ended(holder: Holder, slurm_state: Callable[[str], str]) -> str | None:
    """Why ``holder`` provably ended (a phrase), or None while it may still live."""
    if holder.slurm_job_ids:
        states = [slurm_state(job_id) for job_id in holder.slurm_job_ids]
        if any(state and state not in SLURM_ENDED for state in states):
            return None
        return f"SLURM job {', '.join(holder.slurm_job_ids)} has left the queue"
    if holder.host != socket.gethostname():
        return None  # another host's process: not ours to judge
    started = process_started_unix_s(holder.pid)
    if started is None:
        return f"pid {holder.pid} is gone"
    if started > holder.started_unix_s + 2:  # the pid was reused by a process younger than the lock
        return f"pid {holder.pid} is now another process"
    return None


def _squeue_state(job_id: str) -> str:
    """The job's state, "" once SLURM no longer knows it, "UNKNOWN" when squeue cannot tell (then it may live)."""
    from scaletrain.contract.errors import LaunchError
    from scaletrain.driver.launchers import slurm_cluster

    try:
        return slurm_cluster.queue_state(job_id, unknown="UNKNOWN")
    except LaunchError:
        return "UNKNOWN"


class Lock:
    """The locks of one job's directories, held until ``release``."""

    def __init__(self, paths: list[Path], holder: Holder) -> None:
        self.paths = paths
        self.holder = holder

    def hand_over(self, slurm_job_ids: Sequence[str]) -> None:
        """The job now lives as these SLURM jobs (none: nothing changes): the locks stay after this process exits,
        until they end."""
        if not slurm_job_ids:
            return
        self.holder = Holder(**{**asdict(self.holder), "slurm_job_ids": tuple(slurm_job_ids)})
        for path in self.paths:
            _replace(path, self.holder)

    def release(self) -> None:
        if self.holder.slurm_job_ids:
            return
        for path in self.paths:
            if _read(path) == self.holder:  # never remove a lock that someone took over meanwhile
                path.unlink(missing_ok=True)


def acquire(directories: Sequence[Path], launcher: str, slurm_state: Callable[[str], str] = _squeue_state) -> Lock:
    """Hold every directory in ``directories`` (created as needed) for this job, or refuse in one sentence (exit 2)
    naming the live holder, releasing what was taken."""
    holder = Holder.here(launcher)
    taken: list[Path] = []
    try:
        for directory in dict.fromkeys(Path(d).resolve() for d in directories):
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / LOCK_NAME
            while not _write_new(path, holder):
                current = _read(path)
                if current is not None and os.environ.get("SLURM_JOB_ID") in current.slurm_job_ids:
                    path.unlink(missing_ok=True)  # handed to this very SLURM job (its batch shell prepares it)
                    continue
                why = "its lock file is unreadable" if current is None else ended(current, slurm_state)
                if why is None:
                    raise ConfigError(
                        f"{directory} is in use by {current.describe()}; wait for that job to end or stop it, or "
                        f"run this one elsewhere with hydra.run.dir=PATH (if that job is gone, delete {path})."
                    )
                log.warning("taking over %s: its holder ended (%s)", path, why)
                path.unlink(missing_ok=True)
            taken.append(path)
    except BaseException:
        Lock(taken, holder).release()
        raise
    return Lock(taken, holder)
