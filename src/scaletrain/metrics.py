"""Throughput measured between log points, so no step pays for an extra device sync.

Units: samples_per_s counts samples over all ranks per second of wall time; samples_per_s_per_device divides
that by the world size; step_time_s is wall seconds per optimizer step, averaged over the window.
"""

from __future__ import annotations

import time


class ThroughputMeter:
    """Counts samples and steps; ``read()`` closes a window and returns its rates.

    The first window carries start-up costs (allocation, kernel selection, compilation), so the run's
    steady-state figures in ``totals()`` leave it out whenever a later window exists.
    """

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self._window_start = time.perf_counter()
        self._window_samples = 0
        self._window_steps = 0
        self._windows = 0
        self._steady = [0.0, 0, 0]  # seconds, samples, steps over windows after the first
        self._first = [0.0, 0, 0]

    def add_step(self, global_samples: int) -> None:
        self._window_samples += global_samples
        self._window_steps += 1

    def read(self) -> dict[str, float]:
        """Rates over the window since the last read (the caller has already synced the device)."""
        now = time.perf_counter()
        seconds = max(now - self._window_start, 1e-9)
        figures = self._rates(seconds, self._window_samples, self._window_steps)
        bucket = self._first if self._windows == 0 else self._steady
        bucket[0] += seconds
        bucket[1] += self._window_samples
        bucket[2] += self._window_steps
        self._windows += 1
        self._window_start, self._window_samples, self._window_steps = now, 0, 0
        return figures

    def totals(self) -> dict[str, float]:
        seconds, samples, steps = self._steady if self._steady[2] else self._first
        if not steps:
            return {}
        return self._rates(seconds, samples, steps)

    def _rates(self, seconds: float, samples: int, steps: int) -> dict[str, float]:
        samples_per_s = samples / seconds
        return {
            "samples_per_s": samples_per_s,
            "samples_per_s_per_device": samples_per_s / self.world_size,
            "step_time_s": seconds / max(steps, 1),
        }


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def epoch_time_s(train_time_s: float, steps_run: int, steps_per_epoch: int) -> float | None:
    """Wall seconds per epoch over this run's steps, start-up and validation included (None before a step)."""
    return train_time_s * steps_per_epoch / steps_run if steps_run else None
