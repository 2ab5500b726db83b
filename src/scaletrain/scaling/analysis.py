"""From the summaries of a sweep's runs to the scaling table: measured efficiency beside the α-β prediction."""

from __future__ import annotations

from typing import Any

from scaletrain.scaling.model import AlphaBeta, efficiency, predicted_step_time_s

COLUMNS = (
    "world_size",
    "global_batch_size",
    "samples_per_s",
    "samples_per_s_per_device",
    "step_time_s",
    "efficiency",
    "predicted_efficiency",
    "comm_fraction",
    "data_fraction",
    "compute_time_s",
    "compute_slowdown",
    "exposed_comm_s",
    "predicted_comm_s",
)


def fitted_model(points: list[dict[str, Any]]) -> AlphaBeta | None:
    """The α-β fit measured at the largest world size (the one whose collectives matter most)."""
    measured = [p["allreduce"] for p in points if p.get("allreduce")]
    if not measured:
        return None
    best = max(measured, key=lambda a: a["world_size"])
    return AlphaBeta(best["alpha_s"], best["beta_s_per_byte"], best["world_size"])


def analyse(mode: str, points: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of the scaling table, in world-size order, with efficiencies against the measured 1-rank run."""
    points = sorted(points, key=lambda p: p["world_size"])
    base = points[0]
    if base["world_size"] != 1:
        raise ValueError("a scaling analysis needs the measured 1-rank run as its baseline")
    model = fitted_model(points)
    base_batch = base["global_batch_size"]
    rows = []
    for p in points:
        n = p["world_size"]
        batch_ratio = (p["global_batch_size"] / n) / base_batch  # per-device batch against the 1-rank batch
        predicted_step = predicted_step_time_s(base["step_time_s"], batch_ratio, p["gradient_bytes"], model, n)
        predicted = efficiency(
            mode,
            n,
            {"step_time_s": predicted_step, "samples_per_s_per_device": p["global_batch_size"] / n / predicted_step},
            base,
        )
        rows.append(
            {
                "world_size": n,
                "global_batch_size": p["global_batch_size"],
                "samples_per_s": p["samples_per_s"],
                "samples_per_s_per_device": p["samples_per_s_per_device"],
                "step_time_s": p["step_time_s"],
                "efficiency": efficiency(mode, n, p, base),
                "predicted_efficiency": predicted,
                "comm_fraction": p.get("comm_fraction", 0.0),
                "data_fraction": p.get("data_time_s", 0.0) / p["step_time_s"],
                "compute_time_s": p.get("compute_time_s", p["step_time_s"]),
                # > 1: the same per-device work got slower at N ranks (shared cores, memory bandwidth, stragglers)
                "compute_slowdown": p.get("compute_time_s", p["step_time_s"])
                / (base.get("compute_time_s", base["step_time_s"]) * batch_ratio),
                "exposed_comm_s": p.get("exposed_comm_s", 0.0),
                "predicted_comm_s": predicted_step - base["step_time_s"] * batch_ratio,
            }
        )
    return {
        "mode": mode,
        "rows": rows,
        "alpha_beta": None
        if model is None
        else {
            "alpha_s": model.alpha_s,
            "beta_s_per_byte": model.beta_s_per_byte,
            "bandwidth_gbit_per_s": model.bandwidth_gbit_per_s,
            "fitted_at_world_size": model.world_size,
        },
        "gradient_bytes": base["gradient_bytes"],
        "prediction": "step(N) = step(1) × per-device batch ratio + ring all-reduce of the gradients "
        "(2(N−1)α per bucket + 2(N−1)/N × bytes × β), assuming no overlap of communication and compute",
    }
