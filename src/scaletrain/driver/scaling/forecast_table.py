"""The forecast (driver/scaling/forecast.py) as the sweep report shows it: a markdown table per size, with each figure's
range, and the sentence naming the largest size that stays efficient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _range(row: dict[str, Any], key: str, fmt: Callable[[float], str]) -> str:
    value, low, high = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if value is None:
        return "–"
    shown = fmt(value)
    return shown if fmt(low) == fmt(high) == shown else f"{shown} ({fmt(low)}–{fmt(high)})"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _money(value: float) -> str:
    return f"{value:,.2f}" if value >= 1 else f"{value:.3g}"


def sentence(fc: dict[str, Any]) -> str:
    """The largest size keeping efficiency ≥ the threshold, per bound, with the model's range."""
    largest, limit = fc["largest_efficient"], fc["largest_efficient"]["search_limit"]

    def n(value: int) -> str:
        return f"≥ {value:,} (the search limit)" if value >= limit else f"{value:,}"

    def ranged(b: dict[str, int]) -> str:
        return n(b["value"]) if b["low"] == b["high"] else f"{n(b['value'])} ({n(b['low'])}–{n(b['high'])})"

    asked = fc["largest_efficient_asked"]
    of_asked = (
        f"; of the sizes asked, {asked:,} is the largest that does" if asked else "; none of the sizes asked does"
    )
    return (
        f"Largest efficient size (efficiency ≥ {fc['min_efficiency']:.0%}): N = {ranged(largest['no_overlap'])} "
        f"with no overlap, N = {ranged(largest['full_overlap'])} with full overlap{of_asked}"
    )


def table(fc: dict[str, Any]) -> list[str]:
    """The forecast as markdown lines: the model, a row per size, the sentence naming the largest efficient size."""
    lines = ["", "Forecast" + (f" ({fc['model']})" if fc.get("model") else "") + ":"]
    for note in fc.get("notes", []):
        lines.append(f"Not forecast: {note}.")
    if not fc["rows"]:
        return lines
    cost = fc.get("price_per_device_hour") is not None and fc["rows"][0]["cost_per_epoch_no_overlap"] is not None
    headers = ["devices", "comm s", "efficiency (no overlap)", "efficiency (full overlap)", "samples/s (no overlap)"]
    headers += ["cost/epoch (no overlap)"] if cost else []
    lines += ["", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in fc["rows"]:
        cells = [
            f"{r['devices']:,}",
            f"{r['comm_s']:.4f}",
            _range(r, "efficiency_no_overlap", _pct),
            _range(r, "efficiency_full_overlap", _pct),
            _range(r, "samples_per_s_no_overlap", _count),
        ]
        if cost:
            # the cost's _low is its cheap end, which comes from the fast network: shown low–high like the others
            cells.append(_range(r, "cost_per_epoch_no_overlap", _money))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", sentence(fc) + "."]
    return lines
