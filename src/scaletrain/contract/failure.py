"""How a rank failed, in its own words, so that the launcher names the cause and not the first casualty.

A rank whose training raises writes a note beside its beacon (``failure_rank_N.json``): its own clock, the
exception, and its kind. ``collective``: the error came out of the communication layer (a peer's socket closed, a
collective timed out, TensorFlow's coordination service lost a task): usually a peer's failure seen from here.
``exception``: raised by the code itself, the user's or scaletrain's. When ranks fail, the cause is the earliest
``exception`` by the ranks' own clocks, and every other rank "ended because" of it; with collective errors alone,
the launcher names the rank that died without a note (a signal, a lost node), as it always did.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from scaletrain.contract import atomic

NOTE = "failure_rank_{rank}.json"
# Where a collective's error is raised from, and what such errors say: the peer is gone or late.
_COLLECTIVE_FILES = ("torch/distributed/", "torch_xla/", "tensorflow/python/distribute/", "tensorflow/dtensor/")
_COLLECTIVE_WORDS = (
    "connection closed by peer", "connection reset by peer", "gloo", "nccl", "collective ops is aborted",
    "coordination service", "heartbeat", "unavailableerror", "distbackenderror",
)  # fmt: skip


@dataclass(frozen=True)
class Note:
    rank: int
    host: str
    pid: int
    time_unix_s: float  # when the rank raised, by its own clock
    kind: str  # "exception" | "collective"
    error: str  # "ValueError: boom"
    where: str  # the innermost frame outside the standard library: "train.py:41 in step"

    def describe(self) -> str:
        return f"{self.error} ({self.where})" if self.where else self.error


def kind_of(exc: BaseException) -> str:
    """``collective`` when the error came from the communication layer, else ``exception``."""
    text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}".lower()
    files = [frame.filename.replace(os.sep, "/") for frame in traceback.extract_tb(exc.__traceback__)]
    raised_in_collective = bool(files) and any(hint in files[-1] for hint in _COLLECTIVE_FILES)
    return "collective" if raised_in_collective or any(word in text for word in _COLLECTIVE_WORDS) else "exception"


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def write(directory: Path, rank: int, exc: BaseException) -> None:
    """This rank's note, written before the traceback is printed and the process exits (never raises)."""
    error = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    note = Note(rank, socket.gethostname(), os.getpid(), time.time(), kind_of(exc), (error or [""])[-1][:500],
                _where(exc))  # fmt: skip
    path = Path(directory) / NOTE.format(rank=rank)
    try:
        atomic.write(path, json.dumps(asdict(note)) + "\n")
    except OSError:
        pass  # the launcher then judges by exit order alone, as it would without notes


def parse(text: str) -> Note | None:
    try:
        return Note(**json.loads(text))
    except (ValueError, TypeError):
        return None


def read_all(directory: Path) -> dict[int, Note]:
    notes = {}
    for path in Path(directory).glob(NOTE.format(rank="*")):
        try:
            note = parse(path.read_text())
        except OSError:
            continue
        if note is not None:
            notes[note.rank] = note
    return notes


def cause(notes: dict[int, Note]) -> Note | None:
    """The failure the others followed: the earliest ``exception`` by the ranks' own clocks. None when every note
    is a collective's error: those ranks lost a peer that left no note (killed by a signal, its node lost), and the
    launcher names that peer by how it ended."""
    own = [note for note in notes.values() if note.kind == "exception"]
    return min(own, key=lambda n: n.time_unix_s) if own else None


def verdict(first: Note, others: list[int]) -> str:
    """One sentence: the cause, and the other ranks of the job, which ended because of it."""
    others = sorted(set(others) - {first.rank})
    tail = ""
    if others:
        which = f"rank {others[0]}" if len(others) == 1 else f"ranks {', '.join(map(str, others))}"
        tail = f"; {which} ended because rank {first.rank} failed"
    return f"rank {first.rank} on {first.host} raised {first.describe()}{tail}"
