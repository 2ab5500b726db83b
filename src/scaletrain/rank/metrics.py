"""Throughput and where a step's time goes, measured between log points so no step pays for an extra sync.

Units: ``samples_per_s`` counts samples over all ranks per wall second; ``samples_per_s_per_device`` divides that
by the number of devices; ``step_time_s`` is wall seconds per optimizer step, averaged over the window, not
counting seconds the runtime spent compiling graphs (reported on their own as ``compile_time_s``).

A step's time is split three ways (per step, averaged over the window):
- ``data_time_s``: host time to produce the batch and hand it to the device (index, gather, copy launch).
- ``exposed_comm_s``: communication the step had to wait for — from the moment the last gradient bucket was handed
  to the all-reduce until every bucket's all-reduce had finished (DDP waits for them before backward returns).
  ``comm_time_s`` is the all-reduces' total busy time, part of which overlaps the backward pass.
- ``compute_time_s``: the rest (forward, backward, optimizer). On GPUs this remainder also absorbs kernel time the
  host did not wait for step by step, which is why it is computed as a remainder and not timed directly.
"""

from __future__ import annotations

import resource
import sys
import threading
import time


class CommTimer:
    """Collects (start, end) of each asynchronous all-reduce; the strategy's communication hook feeds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._intervals: list[tuple[float, float]] = []
        self._last_launch = 0.0

    def launched(self) -> float:
        now = time.perf_counter()
        with self._lock:
            self._last_launch = now
        return now

    def finished(self, started: float) -> None:
        now = time.perf_counter()
        with self._lock:
            self._intervals.append((started, now))

    def take(self) -> tuple[float, float]:
        """(busy seconds, exposed seconds) of the communication since the last call."""
        with self._lock:
            intervals, self._intervals = self._intervals, []
            last_launch = self._last_launch
        if not intervals:
            return 0.0, 0.0
        busy = sum(end - start for start, end in intervals)
        exposed = max(0.0, max(end for _, end in intervals) - last_launch)
        return busy, exposed


_PARTS = ("data_time_s", "comm_time_s", "exposed_comm_s")


class ThroughputMeter:
    """Counts samples, steps and time parts; ``read()`` closes a window and returns its rates.

    The first window carries start-up costs (allocation, kernel selection, compilation), so the run's
    steady-state figures in ``totals()`` leave it out whenever a later window exists.
    """

    def __init__(self, world_size: int, measures_comm: bool = True) -> None:
        self.world_size = world_size  # devices the samples are split over
        self.measures_comm = measures_comm  # False: the communication figures are left out, not reported as 0
        self._window_start = time.perf_counter()
        self._window = self._empty()
        self._compile_s = 0.0  # cumulative compile seconds at the last read
        self._windows = 0
        self._first = self._empty()
        self._steady = self._empty()

    @staticmethod
    def _empty() -> dict[str, float]:
        return {"seconds": 0.0, "samples": 0, "steps": 0, **dict.fromkeys(_PARTS, 0.0)}

    def add_step(self, global_samples: int, data_s: float = 0.0, comm_s: float = 0.0, exposed_comm_s: float = 0.0):
        w = self._window
        w["samples"] += global_samples
        w["steps"] += 1
        w["data_time_s"] += data_s
        w["comm_time_s"] += comm_s
        w["exposed_comm_s"] += exposed_comm_s

    def read(self, compile_time_s: float = 0.0) -> dict[str, float]:
        """Rates over the window since the last read (the caller has already synced the device).

        ``compile_time_s``: the runtime's cumulative compile seconds; the window's share is left out of its time.
        """
        now = time.perf_counter()
        compiling = max(compile_time_s - self._compile_s, 0.0)
        self._compile_s = max(compile_time_s, self._compile_s)
        self._window["seconds"] = max(now - self._window_start - compiling, 1e-9)
        figures = self._rates(self._window)
        bucket = self._first if self._windows == 0 else self._steady
        for key, value in self._window.items():
            bucket[key] += value
        self._windows += 1
        self._window_start, self._window = now, self._empty()
        return figures

    def totals(self) -> dict[str, float]:
        counts = self._steady if self._steady["steps"] else self._first
        return self._rates(counts) if counts["steps"] else {}

    def _rates(self, c: dict[str, float]) -> dict[str, float]:
        steps = max(c["steps"], 1)
        samples_per_s = c["samples"] / c["seconds"]
        step_time_s = c["seconds"] / steps
        parts = {key: c[key] / steps for key in _PARTS}
        figures = {
            "samples_per_s": samples_per_s,
            "samples_per_s_per_device": samples_per_s / self.world_size,
            "step_time_s": step_time_s,
            "data_time_s": parts["data_time_s"],
            # without a communication split, the compute time includes the communication the step waited for
            "compute_time_s": max(0.0, step_time_s - parts["data_time_s"] - parts["exposed_comm_s"]),
        }
        if self.measures_comm:
            figures["comm_time_s"] = parts["comm_time_s"]
            figures["exposed_comm_s"] = parts["exposed_comm_s"]
            figures["comm_fraction"] = parts["exposed_comm_s"] / step_time_s
        return figures


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def epoch_time_s(train_time_s: float, steps_run: int, steps_per_epoch: int) -> float | None:
    """Wall seconds per epoch over this run's steps, start-up and validation included (None before a step)."""
    return train_time_s * steps_per_epoch / steps_run if steps_run else None


def run_summary(
    step: int, start_step: int, epochs: int, steps_per_epoch: int, train_time_s: float
) -> dict[str, float | int]:
    """How far a run trained and how long it took, the same for every framework."""
    summary: dict[str, float | int] = {
        "steps": step,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "train_time_s": train_time_s,
    }
    if step > start_step:
        summary["epoch_time_s"] = epoch_time_s(train_time_s, step - start_step, steps_per_epoch)
    if start_step:  # its time and throughput cover only its own steps: no efficiency is computed from them
        summary["resumed_from_step"] = start_step
    return summary
