"""The forecast: efficiency, throughput and cost at world sizes a sweep did not run. Pure functions, unit-tested.

From the measured 1-device step time, the model's gradient bytes and an all-reduce model, each size N gets

    compute(N) = step(1) × per-device batch ratio   (weak: the same per-device batch; strong: global batch / N)
    comm(N)    = the all-reduce of the gradients at N, in DDP's buckets (each bucket pays the latency terms)
    no overlap:   step(N) = compute(N) + comm(N)        (a lower bound on efficiency)
    full overlap: step(N) = max(compute(N), comm(N))   (an upper bound: the backward pass hides every all-reduce)
    E(N) = compute(N) / step(N), samples_per_s(N) = global batch(N) / step(N)
    cost per epoch(N) = samples per epoch / samples_per_s(N) × N devices × price per device hour

The all-reduce model is either the α-β fit the sweep measured (a flat ring, with the range the fit's bootstrap
gives: ``low``/``high`` carry it through every figure) or a network the user states (``Network``: hierarchical
when nodes hold several devices). Nothing else is modelled: a forecast assumes the per-device compute stays what
it was on one device (no stragglers, no input-pipeline limit, no smaller-batch slowdown in strong scaling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from scaletrain.common.alpha_beta import DDP_BUCKET_BYTES, AlphaBeta, ddp_buckets, ring_allreduce_factor

SEARCH_LIMIT = 2**20  # the largest world size the "largest efficient size" search looks at
BOUNDS = ("no_overlap", "full_overlap")
ASSUMPTIONS = (
    "compute(N) = the 1-device step × the per-device batch ratio; comm(N) = the bucketed all-reduce of the "
    "gradients; no overlap: step = compute + comm (lower bound), full overlap: step = max(compute, comm) "
    "(upper bound); low–high: the all-reduce model's range"
)


class AllReduceModel(Protocol):
    def allreduce_s(self, nbytes: float, world_size: int | None = None, buckets: int = 1) -> float: ...


@dataclass(frozen=True)
class Network:
    """A stated network: links between nodes, and (``devices_per_node`` > 1) the links inside a node.

    With g = min(devices_per_node, N) devices on each of M = ⌈N / devices_per_node⌉ nodes, an all-reduce of B
    bytes in k buckets is hierarchical (NCCL's and Horovod's two-level all-reduce):

        t = k·2(g−1)·α_intra + 2(g−1)/g · B · β_intra      intra-node reduce-scatter, then all-gather
          + k·2(M−1)·α_inter + 2(M−1)/M · B · β_inter      a ring over the nodes, each device its 1/g shard

    β = 1 / bandwidth. The g inter-node rings (one per shard of B/g bytes) share the node's links, so the inter-node
    term is the node's bandwidth carrying 2(M−1)/M · B. With one device per node (M = N, g = 1) it is the flat ring
    of ``AlphaBeta``: 2(N−1)·α + 2(N−1)/N · B · β. A partly filled last node is counted as a full one.
    """

    bandwidth_gbit_per_s: float  # between nodes: one node's links together
    latency_us: float  # per message step between nodes
    devices_per_node: int = 1
    intra_node_bandwidth_gbit_per_s: float | None = None  # None: bandwidth_gbit_per_s
    intra_node_latency_us: float | None = None  # None: latency_us

    @property
    def hierarchical(self) -> bool:
        return self.devices_per_node > 1

    def nodes(self, world_size: int) -> int:
        return math.ceil(world_size / self.devices_per_node)

    def allreduce_s(self, nbytes: float, world_size: int | None = None, buckets: int = 1) -> float:
        n = world_size or 1
        if n <= 1:
            return 0.0
        g, m = min(self.devices_per_node, n), self.nodes(n)
        intra_bw = self.intra_node_bandwidth_gbit_per_s or self.bandwidth_gbit_per_s
        intra_alpha = self.latency_us if self.intra_node_latency_us is None else self.intra_node_latency_us
        intra = (
            buckets * 2 * (g - 1) * intra_alpha * 1e-6 + ring_allreduce_factor(g) * nbytes * 8 / (intra_bw * 1e9)
            if g > 1
            else 0.0
        )
        inter = (
            buckets * 2 * (m - 1) * self.latency_us * 1e-6
            + ring_allreduce_factor(m) * nbytes * 8 / (self.bandwidth_gbit_per_s * 1e9)
            if m > 1
            else 0.0
        )
        return intra + inter

    def describe(self) -> str:
        inter = f"{self.bandwidth_gbit_per_s:g} Gbit/s and {self.latency_us:g} µs between nodes"
        if not self.hierarchical:
            return f"stated network: {inter}, one device per node (flat ring)"
        intra_bw = self.intra_node_bandwidth_gbit_per_s or self.bandwidth_gbit_per_s
        intra_alpha = self.latency_us if self.intra_node_latency_us is None else self.intra_node_latency_us
        return (
            f"stated network: {inter}, {self.devices_per_node} devices per node at {intra_bw:g} Gbit/s and "
            f"{intra_alpha:g} µs (hierarchical all-reduce)"
        )


@dataclass(frozen=True)
class Baseline:
    """What the forecast starts from: the measured 1-device run."""

    step_time_s: float  # the 1-device step: compute and input, no communication
    global_batch_size: int  # the 1-device batch
    gradient_bytes: float
    samples_per_epoch: int | None = None  # None: no cost per epoch


@dataclass(frozen=True)
class Models:
    """The all-reduce model, and the ends of its range (the same model three times for a stated network)."""

    value: AllReduceModel
    low: AllReduceModel  # the fastest network the measurements allow
    high: AllReduceModel  # the slowest


def compute_time_s(mode: str, base: Baseline, world_size: int, per_device_batch_size: int | None = None) -> float:
    """The per-device compute (and input) time of one step at ``world_size``: the 1-device step, scaled."""
    if mode == "weak":
        return base.step_time_s * (per_device_batch_size or base.global_batch_size) / base.global_batch_size
    return base.step_time_s / world_size


def global_batch_size(mode: str, base: Baseline, world_size: int, per_device_batch_size: int | None = None) -> int:
    if mode == "weak":
        return (per_device_batch_size or base.global_batch_size) * world_size
    return base.global_batch_size


def bound_step_time_s(bound: str, compute_s: float, comm_s: float) -> float:
    """Step time with no overlap of communication and compute (their sum) or full overlap (the larger one)."""
    return compute_s + comm_s if bound == "no_overlap" else max(compute_s, comm_s)


def cost_per_epoch(samples_per_epoch: int, samples_per_s: float, world_size: int, price_per_device_hour: float):
    """Price of one epoch: its hours on ``world_size`` devices × their price per device hour."""
    return samples_per_epoch / samples_per_s / 3600 * world_size * price_per_device_hour


def forecast_row(
    mode: str,
    base: Baseline,
    world_size: int,
    models: Models,
    price_per_device_hour: float | None = None,
    per_device_batch_size: int | None = None,
    bucket_bytes: float = DDP_BUCKET_BYTES,
) -> dict[str, Any]:
    """One forecast row: comm, and per bound step time, efficiency, samples/s and cost, each with low–high.

    ``_low``/``_high`` of a figure are its two ends over the model's range (efficiency_low: the slow network;
    cost_per_epoch_low: the cheaper end)."""
    compute_s = compute_time_s(mode, base, world_size, per_device_batch_size)
    batch = global_batch_size(mode, base, world_size, per_device_batch_size)
    buckets = ddp_buckets(base.gradient_bytes, bucket_bytes)
    comm = {
        k: getattr(models, k).allreduce_s(base.gradient_bytes, world_size, buckets) for k in ("value", "low", "high")
    }
    row: dict[str, Any] = {
        "devices": world_size,
        "nodes": models.value.nodes(world_size) if isinstance(models.value, Network) else None,
        "global_batch_size": batch,
        "compute_s": compute_s,
        "comm_s": comm["value"],
        "comm_s_low": min(comm.values()),
        "comm_s_high": max(comm.values()),
    }
    for bound in BOUNDS:
        steps = {k: bound_step_time_s(bound, compute_s, c) for k, c in comm.items()}
        # the slow network (high comm) gives the low efficiency and throughput
        ends = {"": steps["value"], "_low": max(steps.values()), "_high": min(steps.values())}
        row[f"step_time_s_{bound}"] = steps["value"]
        for suffix, step in ends.items():
            row[f"efficiency_{bound}{suffix}"] = compute_s / step
            row[f"samples_per_s_{bound}{suffix}"] = batch / step
        for suffix, cheap in (("", ""), ("_low", "_high"), ("_high", "_low")):  # cheap end: the fast network
            row[f"cost_per_epoch_{bound}{suffix}"] = (
                None
                if price_per_device_hour is None or base.samples_per_epoch is None
                else cost_per_epoch(
                    base.samples_per_epoch, row[f"samples_per_s_{bound}{cheap}"], world_size, price_per_device_hour
                )
            )
    return row


def largest_efficient_world_size(
    efficiency_at: Callable[[int], float], min_efficiency: float, limit: int = SEARCH_LIMIT
) -> int:
    """The largest N ≤ ``limit`` with efficiency_at(N) ≥ ``min_efficiency`` (1 if even 2 falls short).

    Efficiency never rises with N in these models (comm grows with N, compute stays or shrinks), so doubling then
    bisection finds the boundary in O(log N) evaluations."""
    if efficiency_at(min(2, limit)) < min_efficiency or limit < 2:
        return 1
    good = 2
    while good < limit and efficiency_at(min(good * 2, limit)) >= min_efficiency:
        good = min(good * 2, limit)
    if good == limit:
        return limit
    bad = min(good * 2, limit)
    while bad - good > 1:
        mid = (good + bad) // 2
        if efficiency_at(mid) >= min_efficiency:
            good = mid
        else:
            bad = mid
    return good


def largest_efficient(
    mode: str,
    base: Baseline,
    models: Models,
    min_efficiency: float,
    per_device_batch_size: int | None = None,
    bucket_bytes: float = DDP_BUCKET_BYTES,
) -> dict[str, dict[str, int]]:
    """Per bound, the largest world size keeping efficiency ≥ ``min_efficiency``: its value, and its ``low`` (slow
    network) and ``high`` (fast network) ends. Strong scaling stops at the global batch (one sample per device)."""
    limit = SEARCH_LIMIT if mode == "weak" else min(SEARCH_LIMIT, base.global_batch_size)
    buckets = ddp_buckets(base.gradient_bytes, bucket_bytes)
    out: dict[str, dict[str, int]] = {}
    for bound in BOUNDS:
        found = {}
        for key, end in (("value", "value"), ("low", "high"), ("high", "low")):
            model = getattr(models, end)

            def efficiency_at(n: int, model: AllReduceModel = model, bound: str = bound) -> float:
                compute_s = compute_time_s(mode, base, n, per_device_batch_size)
                comm_s = model.allreduce_s(base.gradient_bytes, n, buckets)
                return compute_s / bound_step_time_s(bound, compute_s, comm_s)

            found[key] = largest_efficient_world_size(efficiency_at, min_efficiency, limit)
        out[bound] = found
    return {**out, "search_limit": limit}  # type: ignore[dict-item]


def models_from_fit(allreduce: dict[str, Any]) -> Models:
    """The fitted flat-ring model of a run summary's ``allreduce`` record, with its range where it has one."""
    n = allreduce["devices"]
    alpha, beta = allreduce["alpha_s"], allreduce["beta_s_per_byte"]
    return Models(
        AlphaBeta(alpha, beta, n),
        AlphaBeta(allreduce.get("alpha_s_low", alpha), allreduce.get("beta_s_per_byte_low", beta), n),
        AlphaBeta(allreduce.get("alpha_s_high", alpha), allreduce.get("beta_s_per_byte_high", beta), n),
    )


def describe_fit(allreduce: dict[str, Any]) -> str:
    def gbit(beta: float) -> str:
        return f"{8 / beta / 1e9:.2f}" if beta > 0 else "∞"

    a, lo, hi = (allreduce.get(k, allreduce["alpha_s"]) for k in ("alpha_s", "alpha_s_low", "alpha_s_high"))
    b, blo, bhi = (
        allreduce.get(k, allreduce["beta_s_per_byte"])
        for k in ("beta_s_per_byte", "beta_s_per_byte_low", "beta_s_per_byte_high")
    )
    return (
        f"α-β fit at N={allreduce['devices']}: α = {a * 1e6:.1f} µs ({lo * 1e6:.1f}–{hi * 1e6:.1f}) per ring "
        f"step, bandwidth {gbit(b)} Gbit/s ({gbit(bhi)}–{gbit(blo)}), extrapolated as a flat ring"
    )


def forecast(
    mode: str,
    base: Baseline,
    device_counts: list[int],
    models: Models,
    min_efficiency: float,
    price_per_device_hour: float | None = None,
    per_device_batch_size: int | None = None,
    bucket_bytes: float = DDP_BUCKET_BYTES,
) -> dict[str, Any]:
    """The forecast section: a row per size, and the largest size keeping efficiency ≥ ``min_efficiency``."""
    notes = []
    sizes = sorted(device_counts)
    if mode == "strong" and any(n > base.global_batch_size for n in sizes):
        notes.append(
            f"sizes above the global batch of {base.global_batch_size} were left out: strong scaling gives each "
            "device at least one sample"
        )
        sizes = [n for n in sizes if n <= base.global_batch_size]
    if price_per_device_hour is not None and base.samples_per_epoch is None:
        notes.append("the cost per epoch was not computed: the 1-device run did not report its steps per epoch")
    rows = [
        forecast_row(mode, base, n, models, price_per_device_hour, per_device_batch_size, bucket_bytes) for n in sizes
    ]
    largest = largest_efficient(mode, base, models, min_efficiency, per_device_batch_size, bucket_bytes)
    asked = [r["devices"] for r in rows if r["efficiency_no_overlap"] >= min_efficiency]
    return {
        "device_counts": sizes,
        "min_efficiency": min_efficiency,
        "price_per_device_hour": price_per_device_hour,
        "samples_per_epoch": base.samples_per_epoch,
        "compute_s_1": base.step_time_s,
        "gradient_bytes": base.gradient_bytes,
        "rows": rows,
        "largest_efficient": largest,
        "largest_efficient_asked": max(asked) if asked else None,
        "assumptions": ASSUMPTIONS,
        "notes": notes,
    }


def section(mode: str, points: list[Any], scaling: Any) -> dict[str, Any] | None:
    """The analysis's "forecast" section for a sweep's run summaries, or None when the config asks for none.

    ``scaling``: the job's ScalingConfig (forecast_device_counts, forecast_min_efficiency, price_per_device_hour,
    network, per_device_batch_size). A stated network with no sizes forecasts at the sweep's own sizes."""
    network = getattr(scaling, "network", None)
    sizes = list(scaling.forecast_device_counts) or ([p.devices for p in points] if network is not None else [])
    if not sizes:
        return None
    empty = {"device_counts": sorted(sizes), "rows": [], "min_efficiency": scaling.forecast_min_efficiency}
    base = next((p for p in points if p.devices == 1), None)
    if base is None or base.step_time_s is None:
        return {**empty, "notes": ["no forecast: the 1-device run measured no step time"]}
    if base.gradient_bytes is None:
        return {**empty, "notes": ["no forecast: the 1-device run did not report its gradient bytes"]}
    if network is not None:
        stated = Network(
            network.bandwidth_gbit_per_s,
            network.latency_us,
            network.devices_per_node,
            network.intra_node_bandwidth_gbit_per_s,
            network.intra_node_latency_us,
        )
        models, described = Models(stated, stated, stated), stated.describe()
    else:
        fits = [p.allreduce for p in points if p.allreduce]
        if not fits:
            return {
                **empty,
                "notes": [
                    "no forecast: no all-reduce was timed (sweep to a world size of 2 or more, or state the network "
                    "as scaling.network={bandwidth_gbit_per_s:25,latency_us:5})"
                ],
            }
        fit = max(fits, key=lambda a: a["devices"])
        models, described = models_from_fit(fit), describe_fit(fit)
    samples_per_epoch = base.steps_per_epoch * base.global_batch_size if base.steps_per_epoch else None
    baseline = Baseline(base.step_time_s, base.global_batch_size, base.gradient_bytes, samples_per_epoch)
    per_device = scaling.per_device_batch_size if mode == "weak" else None
    result = forecast(
        mode,
        baseline,
        sizes,
        models,
        scaling.forecast_min_efficiency,
        scaling.price_per_device_hour,
        per_device,
    )
    return {"model": described, **result}
