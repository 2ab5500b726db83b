"""Each rank's output on the launcher's terminal: split into lines, prefixed with the rank, kept in a log and a tail.

Shared by every launcher that relays a rank's raw output (the local supervisor reads it from a pipe, the Ray
launcher receives it in chunks from each rank's actor).
"""

from __future__ import annotations

import re
import sys
import threading
from collections import deque
from pathlib import Path

TAIL_LINES = 20
_LINE_END = re.compile(rb"(?<=[\r\n])")  # split after each terminator, keeping it (progress bars use \r)


class RankOutput:
    """Feed it a rank's raw bytes as they come; complete lines go to stdout as ``[rank N] line``."""

    def __init__(self, rank: int, log_path: Path | None = None, lock: threading.Lock | None = None) -> None:
        self.rank = rank
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._prefix = f"[rank {rank}] ".encode()
        self._lock = lock or threading.Lock()  # shared between ranks so their lines never interleave mid-line
        self._log = open(log_path, "ab") if log_path else None  # noqa: SIM115
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        if self._log:
            self._log.write(chunk)
        *lines, self._pending = _LINE_END.split((self._pending + chunk).replace(b"\r\n", b"\n"))
        self._emit(lines)

    def close(self) -> None:
        """Flush a last unterminated line and close the log; the output is complete."""
        if self._pending:
            self._emit([self._pending + b"\n"])
            self._pending = b""
        if self._log:
            self._log.close()
            self._log = None

    def _emit(self, lines: list[bytes]) -> None:
        if not lines:
            return
        with self._lock:
            for line in lines:
                sys.stdout.buffer.write(self._prefix + line)
            sys.stdout.buffer.flush()
        for line in lines:
            text = line.decode(errors="replace").strip()
            if text:
                self.tail.append(text)
