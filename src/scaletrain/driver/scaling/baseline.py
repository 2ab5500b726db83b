"""Efficiency of a single run against a 1-rank run of the same config in the same sweep directory.

Hydra multirun puts sibling runs in one sweep directory (``-m launcher.nproc_per_node=1,2``); a run finds its
baseline there by comparing job.json files with the world-size-dependent settings left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scaletrain.common.alpha_beta import efficiency
from scaletrain.contract import config
from scaletrain.contract.summary import RunSummary

# Settings that may differ between a run and its baseline without making them different experiments.
_IGNORED = {
    ("output_dir",),
    ("checkpoint", "dir"),
    ("launcher", "nproc_per_node"),
    ("launcher", "nproc"),
    ("launcher", "nodes"),
    ("launcher", "ntasks_per_node"),
    ("strategy", "num_devices"),  # xla: devices per process
    ("strategy", "cpu_devices"),  # mirrored: logical CPU devices of one process
    ("train", "global_batch_size"),
    ("logger", "group"),
    ("strategy_was_picked",),
}


def _comparable(job: dict[str, Any]) -> dict[str, Any]:
    out = config.current_names(job)  # an older run's job.json compares in today's names
    for path in _IGNORED:
        node = out
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
    return out


def _read(directory: Path) -> tuple[dict, RunSummary] | None:
    try:
        return json.loads((directory / "job.json").read_text()), RunSummary.read(directory)
    except (OSError, ValueError, TypeError):
        return None


def partial(summary: RunSummary) -> str | None:
    """Why a run's figures cover only part of its job (it resumed, or restarted), or None for a complete run."""
    resumed = summary.extra.get("resumed_from_step")
    if resumed:
        return f"it resumed from step {resumed}, so its throughput covers only its own steps"
    if summary.attempt:
        return f"it restarted (attempt {summary.attempt}), so its throughput covers only its last attempt"
    return None


def single_run_efficiency(run_dir: Path) -> dict[str, Any] | None:
    """{efficiency, efficiency_mode, baseline_dir} when a matching 1-rank sibling run exists, else None; when the
    run or that baseline trained only part of its job, {efficiency_skipped: why} instead (no efficiency is computed
    between partial runs)."""
    mine = _read(run_dir)
    if mine is None or mine[1].devices == 1 or not mine[1].has_throughput:
        return None
    job, summary = mine
    n = summary.devices
    for sibling in sorted(p for p in run_dir.parent.iterdir() if p.is_dir() and p != run_dir):
        other = _read(sibling)
        if other is None or other[1].devices != 1 or _comparable(other[0]) != _comparable(job):
            continue
        if not other[1].has_throughput:
            continue
        base_batch, batch = other[0]["train"]["global_batch_size"], job["train"]["global_batch_size"]
        mode = "strong" if batch == base_batch else "weak" if batch == base_batch * n else None
        if mode is None:
            continue
        why = partial(summary) or partial(other[1])
        if why is not None:
            which = "this run" if partial(summary) else f"the 1-device run in {sibling}"
            return {"efficiency_skipped": f"no scaling efficiency against {sibling}: {which} is partial ({why})"}
        return {
            "efficiency": efficiency(mode, n, summary, other[1]),
            "efficiency_mode": mode,
            "baseline_dir": str(sibling),
        }
    return None
