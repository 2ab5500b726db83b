"""Stragglers: the rank that slows the others down, found from every rank's own time per step at each log window.

In synchronous training every rank's step takes as long as the slowest rank's: the others wait for it in the
gradient all-reduce. So a rank's *own* time is its step minus the time it waited for its peers:

- where the framework times the wait (DDP's communication hook: the exposed all-reduce time), own = step - wait;
- where it cannot (a compiled TensorFlow or XLA step holds the all-reduce inside), the compute is taken as equal
  on every rank (the least any rank spent in the step), so own = data + that least compute: a rank slow to get
  its data is found, a rank slow to compute is not (docs/operations.md "Stragglers" says so).

A rank is named once its own time per step, over the last ``windows`` blocks of log windows (their median; a
block is at least ``BLOCK_S`` of training), exceeds the median of the other ranks' by more than ``slowdown``× and
by at least ``MIN_EXCESS_S`` (so microsecond steps do not raise alarms on noise). The figures ride on the log
window's loss all-reduce (``Stepper.reduce_window``): no extra collective.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import asdict, dataclass

RANK_FIGURES = ("step_time_s", "data_time_s", "wait_time_s")  # per-step means over a window, one row per rank
MIN_EXCESS_S = 0.001  # a straggler's own step is also at least this much longer than the others'
BLOCK_S = 0.5  # log windows are judged together in blocks of at least this much training time


@dataclass
class Straggler:
    rank: int
    host: str
    slowdown: float  # its own time per step over the median of the other ranks' (1.0: as fast as they are)
    windows: int = 1  # log windows in which it was named


def own_times(rows: list[list[float]], wait_measured: bool) -> list[float]:
    """Each rank's own time per step from its (step, data, wait) row: the step less the wait for its peers."""
    if wait_measured:
        return [max(step_s - wait_s, 0.0) for step_s, _, wait_s in rows]
    least_compute_s = min(max(step_s - data_s, 0.0) for step_s, data_s, _ in rows)
    return [data_s + least_compute_s for _, data_s, _ in rows]


class StragglerDetector:
    """Fed every log window's own times (the same on every rank); names the ranks persistently slower.

    Log windows are gathered into blocks of at least ``BLOCK_S`` seconds of training (a window of five millisecond
    steps says little on a busy host); a rank is named when its slowdown, the median over the last ``windows``
    blocks, is above ``slowdown``: one quick block does not clear it, one slow block does not name it.
    """

    def __init__(self, hosts: list[str], slowdown: float, windows: int) -> None:
        self.hosts = hosts
        self.slowdown = slowdown
        self._recent = [deque(maxlen=windows) for _ in hosts]  # (ratio, excess seconds) of the last blocks
        self._named: dict[int, list[float]] = {}
        self._current: list[Straggler] = []
        self._block_s = [0.0] * len(hosts)  # own seconds per rank in the block being gathered
        self._block_steps = 0
        self._block_span_s = 0.0

    def update(self, own_s: list[float], steps: int, span_s: float) -> list[Straggler]:
        """Add a window of ``steps`` steps (``own_s`` per step, ``span_s`` of training); the ranks named now."""
        if len(own_s) < 2 or steps < 1:
            return []
        self._block_s = [total + own * steps for total, own in zip(self._block_s, own_s, strict=True)]
        self._block_steps += steps
        self._block_span_s += span_s
        if self._block_span_s >= BLOCK_S:
            self._current = self._judge([total / self._block_steps for total in self._block_s])
            self._block_s, self._block_steps, self._block_span_s = [0.0] * len(own_s), 0, 0.0
        return self._current

    def _judge(self, own_s: list[float]) -> list[Straggler]:
        current = []
        for rank, mine in enumerate(own_s):
            others = statistics.median(own_s[:rank] + own_s[rank + 1 :])
            recent = self._recent[rank]
            recent.append((mine / others if others > 0 else 1.0, mine - others))
            if len(recent) < recent.maxlen:
                continue
            ratio = statistics.median(r for r, _ in recent)
            if ratio > self.slowdown and statistics.median(e for _, e in recent) >= MIN_EXCESS_S:
                self._named.setdefault(rank, []).append(ratio)
                current.append(Straggler(rank, self.hosts[rank], ratio))
        return current

    def summary(self) -> list[dict]:
        """Every rank named during the run, with its median slowdown over the windows it was named in."""
        return [
            asdict(Straggler(rank, self.hosts[rank], statistics.median(ratios), len(ratios)))
            for rank, ratios in sorted(self._named.items())
        ]
