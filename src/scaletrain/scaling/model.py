"""The arithmetic of scaling efficiency and of the α-β all-reduce cost model. Pure functions, unit-tested.

Throughputs are samples_per_s over all ranks; per-device throughput divides by the world size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DDP_BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's default bucket_cap_mb


def weak_efficiency(per_device_samples_per_s_n: float, samples_per_s_1: float) -> float:
    """Fixed per-device batch: E(N) = per-device throughput(N) / throughput(1)."""
    return per_device_samples_per_s_n / samples_per_s_1


def strong_efficiency(step_time_s_1: float, step_time_s_n: float, world_size: int) -> float:
    """Fixed global batch: E(N) = T(1) / (N · T(N)), T the time for the same global batch."""
    return step_time_s_1 / (world_size * step_time_s_n)


def ring_allreduce_factor(world_size: int) -> float:
    """A ring all-reduce sends and receives 2(N−1)/N × the buffer's bytes per rank."""
    return 2 * (world_size - 1) / world_size


@dataclass(frozen=True)
class AlphaBeta:
    """Ring all-reduce time t(bytes) = 2(N−1)·α + 2(N−1)/N · bytes · β, fitted at one world size."""

    alpha_s: float  # latency per ring step, seconds
    beta_s_per_byte: float  # inverse bandwidth, seconds per byte on the wire
    world_size: int

    @property
    def bandwidth_gbit_per_s(self) -> float:
        return 8 / self.beta_s_per_byte / 1e9 if self.beta_s_per_byte > 0 else math.inf

    def allreduce_s(self, nbytes: float, world_size: int | None = None, buckets: int = 1) -> float:
        n = world_size or self.world_size
        if n <= 1:
            return 0.0
        return buckets * 2 * (n - 1) * self.alpha_s + ring_allreduce_factor(n) * nbytes * self.beta_s_per_byte


def fit_alpha_beta(sizes_bytes: Sequence[float], times_s: Sequence[float], world_size: int) -> AlphaBeta:
    """Least-squares line through (wire bytes, time); intercept and slope give α and β (clamped at 0)."""
    if world_size < 2 or len(sizes_bytes) < 2 or len(sizes_bytes) != len(times_s):
        raise ValueError("an α-β fit needs at least two message sizes measured at a world size of 2 or more")
    xs = [ring_allreduce_factor(world_size) * s for s in sizes_bytes]
    mean_x, mean_y = sum(xs) / len(xs), sum(times_s) / len(times_s)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, times_s, strict=True)) / sxx if sxx else 0.0
    intercept = mean_y - slope * mean_x
    return AlphaBeta(max(intercept, 0.0) / (2 * (world_size - 1)), max(slope, 0.0), world_size)


def ddp_buckets(gradient_bytes: float, bucket_bytes: float = DDP_BUCKET_BYTES) -> int:
    return max(1, math.ceil(gradient_bytes / bucket_bytes))


def predicted_step_time_s(
    compute_s_1: float, batch_ratio: float, gradient_bytes: float, model: AlphaBeta | None, world_size: int
) -> float:
    """Step time at N ranks if nothing but the all-reduce is added: the 1-rank compute (and data) time scaled
    by the per-device batch ratio, plus the gradients' all-reduce with no overlap (an upper bound on cost)."""
    comm = model.allreduce_s(gradient_bytes, world_size, ddp_buckets(gradient_bytes)) if model else 0.0
    return compute_s_1 * batch_ratio + comm


@dataclass(frozen=True)
class Throughput:
    """The figures an efficiency is computed from (a RunSummary has the same attributes)."""

    samples_per_s: float
    samples_per_s_per_device: float
    step_time_s: float


def efficiency(mode: str, world_size: int, point: Throughput, base: Throughput) -> float:
    """E(N) of ``point`` against the 1-device ``base``, in the sweep's ``mode`` (weak or strong)."""
    if mode == "weak":
        return weak_efficiency(point.samples_per_s_per_device, base.samples_per_s)
    return strong_efficiency(base.step_time_s, point.step_time_s, world_size)
