"""From the summaries of a sweep's runs to the scaling table: measured efficiency beside the α-β prediction.

A point's size is its device count (``RunSummary.devices``): ranks for ddp, replicas for mirrored,
XLA devices for xla. A figure a run did not measure stays ``None`` in its row and is shown as "not measured".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaletrain.common.alpha_beta import AlphaBeta, Throughput, efficiency, predicted_step_time_s
from scaletrain.contract.summary import RunSummary

COLUMNS = (
    "devices",
    "global_batch_size",
    "samples_per_s",
    "samples_per_s_per_device",
    "step_time_s",
    "mfu",
    "efficiency",
    "predicted_efficiency",
    "predicted_efficiency_full_overlap",
    "comm_fraction",
    "data_fraction",
    "compute_time_s",
    "compute_slowdown",
    "exposed_comm_s",
    "predicted_comm_s",
    "status",  # ok, or failed: the point's run left no summary (why: the "failed" sentences)
)
PREDICTION = (
    "step(N) = step(1) × per-device batch ratio + ring all-reduce of the gradients "
    "(2(N−1)α per bucket + 2(N−1)/N × bytes × β), assuming no overlap of communication and compute"
)


def fitted_model(points: list[RunSummary]) -> AlphaBeta | None:
    """The α-β fit measured on the most devices (the point whose collectives matter most)."""
    measured = [p.allreduce for p in points if p.allreduce]
    if not measured:
        return None
    best = max(measured, key=lambda a: a["devices"])
    return AlphaBeta(best["alpha_s"], best["beta_s_per_byte"], best["devices"])


def analyse(
    mode: str, points: list[RunSummary], failed: Mapping[int, str] | None = None, scaling: Any = None
) -> dict[str, Any]:
    """Rows of the scaling table, by device count, with efficiencies against the measured 1-device run.

    ``scaling``: the job's ScalingConfig; when it asks for a forecast (forecast_device_counts, or a stated network)
    the result gets a "forecast" section (scaling.forecast.section).

    ``failed``: the device counts whose run left no summary, each with why; each is a row with status "failed". Without
    the 1-device run no efficiency can be computed: the other rows keep their throughput only.
    """
    failed = dict(failed or {})
    points = sorted(points, key=lambda p: p.devices)
    base = points[0] if points and points[0].devices == 1 else None
    if base is None and 1 not in failed:
        raise ValueError("a scaling analysis needs the measured 1-device run as its baseline")
    model = fitted_model(points)
    measured = base is not None and all(p.has_throughput for p in points)
    rows = [_row(mode, p, base, model) if measured else _unmeasured_row(p) for p in points]
    rows += [{**_empty_row(size), "status": "failed"} for size in failed]
    rows.sort(key=lambda r: r["devices"])
    result: dict[str, Any] = {
        "mode": mode,
        "rows": rows,
        "alpha_beta": None
        if model is None
        else {
            "alpha_s": model.alpha_s,
            "beta_s_per_byte": model.beta_s_per_byte,
            "bandwidth_gbit_per_s": model.bandwidth_gbit_per_s,
            "fitted_at_devices": model.world_size,
        },
        "gradient_bytes": base.gradient_bytes if base else None,
        "prediction": PREDICTION,
    }
    result["failed"] = [f"{size} device(s): {why}" for size, why in sorted(failed.items())]
    result["not_measured"] = _not_measured(points, measured) if base else [_NO_BASELINE]
    result["stragglers"] = _stragglers(points)
    result["off_bounds"] = _off_bounds(points, rows) if measured and base.gradient_bytes is not None else []
    if scaling is not None:
        from scaletrain.driver.scaling import forecast

        section = forecast.section(mode, points, scaling)
        if section is not None:
            result["forecast"] = section
    return result


def _stragglers(points: list[RunSummary]) -> list[str]:
    """One sentence per point that had a straggler: then a slow rank, not the network, explains its gap."""
    notes = []
    for p in points:
        if p.stragglers:
            named = ", ".join(
                f"rank {s['rank']} on {s['host']} ({s['slowdown']:.2f}x the others' own step time)"
                for s in p.stragglers
            )
            notes.append(
                f"on {p.devices} devices {named} slowed the others: a straggler, not the network, explains "
                "that point's gap to the prediction"
            )
    return notes


def _not_measured(points: list[RunSummary], measured: bool) -> list[str]:
    """One sentence for each kind of figure the sweep's runs could not measure (shown under the table)."""
    if not measured:
        return [
            "throughput, step time and efficiency were not measured: the training function marks no steps "
            "(mark each step with ctx.step_done(samples=...), or train a built-in workload)"
        ]
    notes = []
    if any(p.gradient_bytes is None for p in points):
        notes.append(
            "the prediction was not made: a run did not report its gradient bytes (a training function passes its "
            "model to ctx.step_done(samples=..., model=model))"
        )
    if any(not p.comm_measured for p in points):
        notes.append(
            f"the communication split (comm frac) was not measured: under {points[0].strategy} the all-reduce runs "
            "inside the compiled step, which gives no hook to time it; the α-β fit still times the collectives"
        )
    return notes


def _row(mode: str, p: RunSummary, base: RunSummary, model: AlphaBeta | None) -> dict[str, Any]:
    n = p.devices
    batch_ratio = (p.global_batch_size / n) / base.global_batch_size  # per-device batch against the 1-device batch
    compute_s = p.compute_time_s if p.compute_time_s is not None else p.step_time_s
    base_compute_s = base.compute_time_s if base.compute_time_s is not None else base.step_time_s
    row = {
        "status": "ok",
        "devices": n,
        "global_batch_size": p.global_batch_size,
        "samples_per_s": p.samples_per_s,
        "samples_per_s_per_device": p.samples_per_s_per_device,
        "step_time_s": p.step_time_s,
        "mfu": p.mfu,
        "efficiency": efficiency(mode, n, p, base),
        "predicted_efficiency": None,
        "predicted_efficiency_full_overlap": None,
        "comm_fraction": p.comm_fraction if p.comm_measured else None,
        "data_fraction": (p.data_time_s or 0.0) / p.step_time_s,
        "compute_time_s": compute_s,
        # > 1: the same per-device work got slower at N devices (shared cores, memory bandwidth, stragglers)
        "compute_slowdown": compute_s / (base_compute_s * batch_ratio),
        "exposed_comm_s": p.exposed_comm_s if p.comm_measured else None,
        "predicted_comm_s": None,
    }
    if base.gradient_bytes is not None:
        predicted_step = predicted_step_time_s(base.step_time_s, batch_ratio, base.gradient_bytes, model, n)
        per_device = p.global_batch_size / n / predicted_step
        predicted = Throughput(per_device * n, per_device, predicted_step)
        row["predicted_efficiency"] = efficiency(mode, n, predicted, base)
        row["predicted_comm_s"] = predicted_step - base.step_time_s * batch_ratio
        overlapped_step = max(base.step_time_s * batch_ratio, row["predicted_comm_s"])  # comm hidden behind compute
        per_device = p.global_batch_size / n / overlapped_step
        overlapped = Throughput(per_device * n, per_device, overlapped_step)
        row["predicted_efficiency_full_overlap"] = efficiency(mode, n, overlapped, base)
    return row


BOUNDS_TOLERANCE = 0.02  # efficiency points: a measured point this close to a bound counts as inside


def _off_bounds(points: list[RunSummary], rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per point whose measured efficiency lies outside the model's bounds (no overlap of communication
    with compute, full overlap), naming the term of the model that is off: the one whose measured time exceeds
    its 1-device share (or the prediction, for communication) the most."""
    by_size = {r["devices"]: r for r in rows}
    base = points[0]
    notes = []
    for p in points[1:]:
        row = by_size[p.devices]
        low, high, measured = row["predicted_efficiency"], row["predicted_efficiency_full_overlap"], row["efficiency"]
        if low is None or high is None or low - BOUNDS_TOLERANCE <= measured <= high + BOUNDS_TOLERANCE:
            continue
        where = f"on {p.devices} devices the measured efficiency {measured:.1%}"
        if measured > high:
            notes.append(
                f"{where} is above even the full-overlap bound {high:.1%}: the compute term is off the other way, the "
                f"1-device step ({base.step_time_s * 1e3:.2f} ms) was slower per sample than the same work at "
                f"N={p.devices} (a cold or disturbed baseline: rerun the 1-device point)"
            )
            continue
        notes.append(f"{where} is below the no-overlap bound {low:.1%}: " + _largest_excess(p, base, row))
    return notes


def _largest_excess(p: RunSummary, base: RunSummary, row: dict[str, Any]) -> str:
    ratio = (p.global_batch_size / p.devices) / base.global_batch_size
    ms = 1e3
    base_compute = (base.compute_time_s if base.compute_time_s is not None else base.step_time_s) * ratio
    excess = {
        "compute": (
            row["compute_time_s"] - base_compute,
            f"compute per step {row['compute_time_s'] * ms:.2f} ms against {base_compute * ms:.2f} ms of the same "
            "work at N=1: shared cores, memory bandwidth or a straggler",
        ),
        "data": (
            (p.data_time_s or 0.0) - (base.data_time_s or 0.0) * ratio,
            f"waiting for data {(p.data_time_s or 0.0) * ms:.2f} ms per step against "
            f"{(base.data_time_s or 0.0) * ratio * ms:.2f} ms at N=1: the input pipeline",
        ),
    }
    if row["exposed_comm_s"] is not None and row["predicted_comm_s"] is not None:
        excess["communication"] = (
            row["exposed_comm_s"] - row["predicted_comm_s"],
            f"exposed all-reduce {row['exposed_comm_s'] * ms:.2f} ms per step against "
            f"{row['predicted_comm_s'] * ms:.2f} ms predicted with no overlap: the network was slower than the α-β "
            "fit says",
        )
    term, (_, detail) = max(excess.items(), key=lambda item: item[1][0])
    return f"the {term} term is off ({detail})"


_NO_BASELINE = (
    "efficiency and the prediction were not computed: the 1-device run, every point's baseline, failed; rerun it "
    "and analyse the sweep again (python -m scaletrain.scaling SWEEP_DIR)"
)


def _empty_row(world_size: int) -> dict[str, Any]:
    return {**dict.fromkeys(COLUMNS), "devices": world_size}


def _unmeasured_row(p: RunSummary) -> dict[str, Any]:
    row = {**_empty_row(p.devices), "global_batch_size": p.global_batch_size, "status": "ok"}
    if p.has_throughput:  # measured, but no baseline to compare with
        row.update(samples_per_s=p.samples_per_s, samples_per_s_per_device=p.samples_per_s_per_device)
        row["step_time_s"] = p.step_time_s
        row["mfu"] = p.mfu
    return row
