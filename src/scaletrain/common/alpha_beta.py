"""The arithmetic of scaling efficiency and of the α-β all-reduce cost model. Pure functions, unit-tested.

Throughputs are samples_per_s over all ranks; per-device throughput divides by the world size.
"""

from __future__ import annotations

import math
import random
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


def fit_alpha_beta(
    sizes_bytes: Sequence[float], times_s: Sequence[float], world_size: int, relative_error: bool = False
) -> AlphaBeta:
    """Least-squares line through (wire bytes, time); intercept and slope give α and β (clamped at 0).

    ``relative_error``: weight each point by 1/time², i.e. minimise relative rather than absolute residuals. An
    unweighted fit lets the largest message (milliseconds) set the intercept, so 1 % of noise there moves α by
    more than the small messages' whole time; weighted, the small messages set α and the large ones β."""
    if world_size < 2 or len(sizes_bytes) < 2 or len(sizes_bytes) != len(times_s):
        raise ValueError("an α-β fit needs at least two message sizes measured at a world size of 2 or more")
    xs = [ring_allreduce_factor(world_size) * s for s in sizes_bytes]
    ws = [1 / t**2 if relative_error and t > 0 else 1.0 for t in times_s]
    total = sum(ws)
    mean_x = sum(w * x for w, x in zip(ws, xs, strict=True)) / total
    mean_y = sum(w * y for w, y in zip(ws, times_s, strict=True)) / total
    sxx = sum(w * (x - mean_x) ** 2 for w, x in zip(ws, xs, strict=True))
    sxy = sum(w * (x - mean_x) * (y - mean_y) for w, x, y in zip(ws, xs, times_s, strict=True))
    slope = sxy / sxx if sxx else 0.0
    intercept = mean_y - slope * mean_x
    return AlphaBeta(max(intercept, 0.0) / (2 * (world_size - 1)), max(slope, 0.0), world_size)


def fit_alpha_beta_regimes(sizes_bytes: Sequence[float], times_s: Sequence[float], world_size: int) -> AlphaBeta:
    """β from the large messages, α from the small ones: the two regimes of a real link.

    β is the least-squares slope over the larger half of the sizes (bandwidth-bound, as gradient buckets of
    megabytes are); α is what remains of the smaller half's times once their bytes are paid at that β. One line
    through every size cannot serve both: unweighted, 1 % of noise on the largest message moves α by more than a
    small message's whole time; weighted by relative error, the small messages set β too, and on a shaped link
    (a token bucket lets a burst of kilobytes through at line rate) that overstates its sustained bandwidth by
    2.5× (0.5 Gbit/s fitted on a 200 Mbit/s link). With fewer than four sizes: one unweighted line."""
    if len(sizes_bytes) < 4:
        return fit_alpha_beta(sizes_bytes, times_s, world_size)
    order = sorted(range(len(sizes_bytes)), key=lambda i: sizes_bytes[i])
    small, large = order[: len(order) // 2], order[len(order) // 2 :]
    beta = fit_alpha_beta([sizes_bytes[i] for i in large], [times_s[i] for i in large], world_size).beta_s_per_byte
    factor = ring_allreduce_factor(world_size)
    latency = sum(times_s[i] - factor * sizes_bytes[i] * beta for i in small) / len(small)
    return AlphaBeta(max(latency, 0.0) / (2 * (world_size - 1)), beta, world_size)


FIT_QUANTILE = 0.2  # each message size's time: the fastest fifth of its repeats (see fit_alpha_beta_range)
FIT_RESAMPLES = 200  # bootstrap resamples behind the fit's range
FIT_INTERVAL = (0.05, 0.95)  # the range reported: the 5th to 95th percentile of the resampled fits


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values``, linear between order statistics (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("a quantile of no values")
    k = (len(ordered) - 1) * q
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass(frozen=True)
class AlphaBetaRange:
    """An α-β fit with its uncertainty: ``fit`` from all repeats, the bounds from a bootstrap over the repeats."""

    fit: AlphaBeta
    alpha_s_low: float
    alpha_s_high: float
    beta_s_per_byte_low: float
    beta_s_per_byte_high: float

    @property
    def optimistic(self) -> AlphaBeta:
        """The fastest network the repeats allow (low α and low β): the forecast's high end."""
        return AlphaBeta(self.alpha_s_low, self.beta_s_per_byte_low, self.fit.world_size)

    @property
    def pessimistic(self) -> AlphaBeta:
        """The slowest network the repeats allow (high α and high β together, a conservative pairing)."""
        return AlphaBeta(self.alpha_s_high, self.beta_s_per_byte_high, self.fit.world_size)


def fit_alpha_beta_range(
    sizes_bytes: Sequence[float],
    repeats_s: Sequence[Sequence[float]],
    world_size: int,
    q: float = FIT_QUANTILE,
    resamples: int = FIT_RESAMPLES,
    seed: int = 0,
) -> AlphaBetaRange:
    """The α-β fit of repeated timings (``repeats_s[i]``: every repeat at ``sizes_bytes[i]``) with a range.

    Each size's time is the ``q`` quantile of its repeats, not the median: on a shared host noise only ever adds
    time (a descheduled rank costs a scheduler tick, milliseconds, against a sub-millisecond collective), and
    the repeats are bimodal, so a median flips between the quiet and the preempted mode from one sweep to the
    next and α with it (0.5 µs in one recorded sweep, 706 µs in the next). The fit takes β from the large
    messages and α from the small ones (``fit_alpha_beta_regimes``). The range: the 5th–95th percentile of α and
    of β over ``resamples`` bootstrap resamples of the repeats (seeded, so the same timings give the same range)."""
    if len(repeats_s) != len(sizes_bytes) or any(not r for r in repeats_s):
        raise ValueError("every message size needs at least one timed repeat")
    fit = fit_alpha_beta_regimes(sizes_bytes, [quantile(r, q) for r in repeats_s], world_size)
    rng = random.Random(seed)
    alphas, betas = [], []
    for _ in range(resamples):
        times = [quantile([rng.choice(r) for _ in r], q) for r in repeats_s]
        sample = fit_alpha_beta_regimes(sizes_bytes, times, world_size)
        alphas.append(sample.alpha_s)
        betas.append(sample.beta_s_per_byte)
    lo, hi = FIT_INTERVAL
    return AlphaBetaRange(
        fit,
        min(fit.alpha_s, quantile(alphas, lo)),
        max(fit.alpha_s, quantile(alphas, hi)),
        min(fit.beta_s_per_byte, quantile(betas, lo)),
        max(fit.beta_s_per_byte, quantile(betas, hi)),
    )


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
