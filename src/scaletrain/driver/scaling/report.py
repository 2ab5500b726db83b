"""Write a sweep's scaling table: printed, scaling.json, scaling.csv and scaling.png."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from scaletrain.contract import jsonfile
from scaletrain.driver.scaling.analysis import COLUMNS

_HEADERS = {
    "devices": "devices",
    "global_batch_size": "global batch",
    "samples_per_s": "samples/s",
    "samples_per_s_per_device": "per device",
    "step_time_s": "step s",
    "mfu": "MFU",
    "efficiency": "efficiency",
    "predicted_efficiency": "predicted",
    "predicted_efficiency_full_overlap": "full overlap",
    "comm_fraction": "comm frac",
    "data_fraction": "data frac",
    "compute_slowdown": "compute ×",
}


def table(analysis: dict[str, Any]) -> str:
    """A markdown table of the columns a reader needs first."""
    keys = list(_HEADERS)
    lines = ["| " + " | ".join(_HEADERS[k] for k in keys) + " |", "|" + "---|" * len(keys)]
    for row in analysis["rows"]:
        cells = [_cell(k, row[k]) for k in keys]
        if row.get("status") == "failed":
            cells[0] += " (failed)"
        lines.append("| " + " | ".join(cells) + " |")
    for sentence in analysis.get("failed", []):
        lines += ["", f"Failed: {sentence}."]
    for sentence in analysis.get("not_measured", []):
        lines += ["", f"Not measured: {sentence}."]
    for sentence in analysis.get("stragglers", []):
        lines += ["", f"Straggler: {sentence}."]
    for sentence in analysis.get("off_bounds", []):
        lines += ["", f"Off the bounds: {sentence}."]
    ab = analysis.get("alpha_beta")
    if ab:
        lines.append("")
        bandwidth = ab["bandwidth_gbit_per_s"]
        shown = (
            f"{bandwidth:.2f} Gbit/s" if bandwidth != float("inf") else "not resolved (times did not grow with size)"
        )
        lines.append(
            f"α-β fit at N={ab['fitted_at_devices']}: α = {ab['alpha_s'] * 1e6:.1f} µs per ring step, "
            f"bandwidth = {shown}; gradients {_mib(analysis['gradient_bytes'])}"
        )
    if analysis.get("forecast"):
        from scaletrain.driver.scaling import forecast_table

        lines += forecast_table.table(analysis["forecast"])
    return "\n".join(lines)


def _mib(nbytes: int | None) -> str:
    return "not measured" if nbytes is None else f"{nbytes / 2**20:.2f} MiB"


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "–"  # not measured: the sentence under the table, or the framework's (see docs/scaling.md)
    if key in ("devices", "global_batch_size"):
        return str(int(value))
    if key in (
        "efficiency",
        "predicted_efficiency",
        "predicted_efficiency_full_overlap",
        "comm_fraction",
        "data_fraction",
    ):
        return f"{value:.1%}"
    if key == "mfu":
        return f"{value:.2%}"
    if key == "step_time_s":
        return f"{value:.4f}"
    if key == "compute_slowdown":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def write(analysis: dict[str, Any], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"scaling.{name}" for name in ("json", "csv", "png", "md")}
    paths["json"].write_text(jsonfile.dumps(analysis, indent=2) + "\n")
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: row[k] for k in COLUMNS} for row in analysis["rows"])
    paths["md"].write_text(table(analysis) + "\n")
    if not plot(analysis, paths["png"]):
        del paths["png"]
    return paths


def plot(analysis: dict[str, Any], path: Path) -> bool:
    """Efficiency and throughput by device count, measured beside ideal and predicted; False: nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in analysis["rows"] if r["efficiency"] is not None]
    if not rows:
        return False  # nothing measured to draw; the table says so
    sizes = [r["devices"] for r in rows]
    fig, (eff, thr) = plt.subplots(1, 2, figsize=(10, 4))
    eff.plot(sizes, [1.0] * len(sizes), "k--", label="ideal")
    predicted = [r["predicted_efficiency"] for r in rows]
    if None not in predicted:
        eff.plot(sizes, predicted, "s:", label="predicted (α-β)")
    eff.plot(sizes, [r["efficiency"] for r in rows], "o-", label="measured")
    eff.set(xlabel="devices", ylabel="efficiency", title=f"{analysis['mode']} scaling efficiency", ylim=(0, 1.25))
    ideal = [rows[0]["samples_per_s"] * n for n in sizes]  # weak and strong alike: N × the 1-rank throughput
    thr.plot(sizes, ideal, "k--", label="ideal (linear)")
    if None not in predicted:
        thr.plot(sizes, [e * i for e, i in zip(predicted, ideal, strict=True)], "s:", label="predicted")
    thr.plot(sizes, [r["samples_per_s"] for r in rows], "o-", label="measured")
    thr.set(xlabel="devices", ylabel="samples/s (all ranks)", title="throughput")
    for ax in (eff, thr):
        ax.set_xticks(sizes)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
