"""The scaling summary run's native W&B charts and tables, from the sweep analysis's rows (tracking.log_sweep
logs them): efficiency, throughput and the time split against the device count, measured beside ideal and predicted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The summary run's native charts: W&B's built-in Vega presets, each filled from its own wandb.Table.
LINE_SERIES = "wandb/lineseries/v0"  # fields: step (x), lineKey (series), lineVal (y)
BAR = "wandb/bar/v0"  # fields: label, value


def _plotted(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows a chart shows: those with a measured efficiency (not a failed or unmeasured point), by devices."""
    return sorted(
        (r for r in rows if r.get("efficiency") is not None and r.get("devices") is not None),
        key=lambda r: r["devices"],
    )


def efficiency_series(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """[devices, series, efficiency] for the efficiency chart: measured, ideal (1.0) and the α-β prediction
    where made. A point with no measured efficiency is left out of every series."""
    data = []
    for row in _plotted(rows):
        n = row["devices"]
        data += [[n, "measured", row["efficiency"]], [n, "ideal", 1.0]]
        if row.get("predicted_efficiency") is not None:
            data.append([n, "predicted", row["predicted_efficiency"]])
    return data


def throughput_series(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """[devices, series, samples_per_s] for the throughput chart: measured; ideal, N × the 1-device throughput
    (linear scaling, in weak and strong mode alike); predicted, the predicted efficiency × ideal. Ideal and
    predicted need the 1-device point's throughput."""
    plotted = _plotted(rows)
    base = next((r.get("samples_per_s") for r in plotted if r["devices"] == 1), None)
    data = []
    for row in plotted:
        n = row["devices"]
        if row.get("samples_per_s") is not None:
            data.append([n, "measured", row["samples_per_s"]])
        if base is not None:
            data.append([n, "ideal", base * n])
            if row.get("predicted_efficiency") is not None:
                data.append([n, "predicted", row["predicted_efficiency"] * base * n])
    return data


def time_split(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """[devices, part, seconds per step, fraction of the step, label] for the time-split charts: compute,
    exposed communication and data of each point's step (metrics.ThroughputMeter's split). Where the framework
    could not time communication apart (comm_fraction None), compute holds it: that part is "compute+comm"."""
    data = []
    for row in _plotted(rows):
        n, step_s = row["devices"], row.get("step_time_s")
        if not step_s:
            continue
        comm = row.get("comm_fraction")
        data_fraction = row.get("data_fraction") or 0.0
        compute_s = row.get("compute_time_s")
        compute = compute_s / step_s if compute_s is not None else 1.0 - data_fraction - (comm or 0.0)
        parts = [("compute" if comm is not None else "compute+comm", compute)]
        if comm is not None:
            parts.append(("communication", comm))
        parts.append(("data", data_fraction))
        data += [[n, part, fraction * step_s, fraction, f"N={n} {part}"] for part, fraction in parts]
    return data


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


def table_data(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns (every key of any row, first seen first) and cells of the scaling table; a key a row lacks (a failed
    point's row has fewer figures, and a ``status``) is None there."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return columns, [[_cell(row.get(c)) for c in columns] for row in rows]


def scaling_charts(wandb: Any, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary run's native W&B charts, by key; a chart with nothing to plot is left out."""
    charts: dict[str, Any] = {}

    def line_series(key: str, columns: list[str], data: list[list[Any]], title: str) -> None:
        if data:
            table = wandb.Table(columns=columns, data=data)
            fields = {"step": columns[0], "lineKey": columns[1], "lineVal": columns[2]}
            strings = {"title": title, "xname": "devices"}
            charts[key] = wandb.plot_table(LINE_SERIES, table, fields, strings)

    line_series(
        "efficiency_chart",
        ["devices", "series", "efficiency"],
        efficiency_series(rows),
        "scaling efficiency: measured, ideal, predicted",
    )
    line_series(
        "throughput_chart",
        ["devices", "series", "samples_per_s"],
        throughput_series(rows),
        "throughput (samples/s): measured, ideal, predicted",
    )
    split = time_split(rows)
    columns = ["devices", "part", "seconds_per_step", "fraction", "label"]
    line_series(
        "time_split_chart",
        ["devices", "part", "fraction"],
        [[n, part, fraction] for n, part, _, fraction, _ in split],
        "time split of a step (fraction): compute, communication, data",
    )
    if split:
        table = wandb.Table(columns=columns, data=split)
        strings = {"title": "seconds per step by part, per device count"}
        charts["time_split_bars"] = wandb.plot_table(
            BAR, table, {"label": "label", "value": "seconds_per_step"}, strings
        )
    return charts
