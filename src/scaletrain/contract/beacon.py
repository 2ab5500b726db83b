"""Progress beacons: where each rank is (step, phase), published about once a second for the launcher's watchdog.

The training loop only assigns two attributes when it changes phase (``Beacon.at``), so a step pays nothing
measurable; a daemon thread writes ``rank_N.json`` into the beacon directory once a second. A rank whose process
is frozen (SIGSTOP, a native call holding the GIL) stops refreshing its file, which is itself a diagnosis.

Beacons live in ``RUN_DIR/beacons/<job instance>/attempt_<N>/``: a job started later in the same run directory (a
resume minutes later, another job) has an instance of its own, so no watchdog ever judges by an earlier job's files.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scaletrain.contract import atomic

PHASES = ("start", "script", "data", "compute", "communication", "checkpoint", "validation", "done")
PUBLISH_EVERY_S = 1.0


@dataclass
class Position:
    """What a rank's beacon file says."""

    rank: int
    host: str
    pid: int
    step: int  # optimizer steps completed
    phase: str
    step_since_unix_s: float  # when ``step`` was reached
    phase_since_unix_s: float
    updated_unix_s: float  # when the file was last written: stale when the process cannot run

    @property
    def order(self) -> tuple[int, int]:
        """How far the rank got: steps first, then the phase within the step."""
        return self.step, PHASES.index(self.phase) if self.phase in PHASES else 0


class Beacon:
    """This rank's beacon; ``at`` is the training loop's only call, cheap enough for every phase of every step."""

    def __init__(self, directory: Path, rank: int, every_s: float = PUBLISH_EVERY_S) -> None:
        self.path = Path(directory) / f"rank_{rank}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.rank, self.host, self.pid = rank, socket.gethostname(), os.getpid()
        self.step, self.phase = 0, "start"
        self._published = Position(rank, self.host, self.pid, 0, "start", now, now, now)
        self._every_s = every_s
        self._stop = threading.Event()
        self._publish()  # at once: a rank frozen within its first second is still named with its host and pid
        self._thread = threading.Thread(target=self._publish_loop, name="scaletrain-beacon", daemon=True)
        self._thread.start()

    def at(self, phase: str, step: int | None = None) -> None:
        self.phase = phase
        if step is not None:
            self.step = step

    def close(self) -> None:
        self.at("done")
        self._stop.set()
        self._thread.join(timeout=2 * self._every_s)
        self._publish()

    def _publish_loop(self) -> None:
        while not self._stop.wait(self._every_s):
            self._publish()

    def _publish(self) -> None:
        now, last = time.time(), self._published
        step, phase = self.step, self.phase  # read once: the loop may change them meanwhile
        position = Position(
            self.rank,
            self.host,
            self.pid,
            step,
            phase,
            last.step_since_unix_s if step == last.step else now,
            last.phase_since_unix_s if (step, phase) == (last.step, last.phase) else now,
            now,
        )
        try:
            atomic.write(self.path, json.dumps(asdict(position)))
        except OSError:
            return  # a full or vanished disk must not kill training; the watchdog then sees a stale beacon
        self._published = position


def new_instance_id() -> str:
    """A name for one job instance started on this host: its start time and the launcher's pid (sortable, unique
    on a host). SLURM's jobs use their job id instead, which a requeue keeps."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def attempt_dir(output_dir: Path | str, instance: str, attempt: int) -> Path:
    """Where the beacons of ``attempt`` of job instance ``instance`` go, under the run directory."""
    return Path(output_dir) / "beacons" / instance / f"attempt_{attempt}"


def read_all(directory: Path) -> dict[int, Position]:
    """Every rank's last published position in ``directory`` (ranks that never published are absent)."""
    found: dict[int, Position] = {}
    for path in Path(directory).glob("rank_*.json"):
        try:
            position = Position(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # being replaced right now, or damaged: the next read gets it
        found[position.rank] = position
    return found
