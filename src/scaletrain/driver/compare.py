"""Finished runs side by side — the PyTorch-vs-TensorFlow head-to-head — as markdown and CSV.

After every Hydra multirun (``python -m scaletrain -m +strategy=ddp,mirrored workload=digits_cnn``) the sweep
directory gets ``comparison.md`` and ``comparison.csv`` with one row per run, and the table is printed. For runs
made separately (other hosts, other days): ``python -m scaletrain.compare RUN_OR_SWEEP_DIR... [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scaletrain.contract.summary import RunSummary

try:  # Hydra instantiates the callback; the CLI above also works without it
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[misc,assignment]

# (column, unit/meaning): what the table shows, in order.
COLUMNS = (
    ("run", "the overrides that set this run apart (else its directory)"),
    ("framework", "torch or tensorflow"),
    ("strategy", "scaletrain strategy"),
    ("workload", "what was trained, as selected (workload=NAME)"),
    ("processes", "ranks (operating-system processes)"),
    ("replicas", "model replicas training in sync"),
    ("global_batch_size", "samples per optimizer step"),
    ("steps", "optimizer steps trained"),
    ("epoch_time_s", "wall seconds per epoch, start-up and validation included"),
    ("samples_per_s", "training samples per second over all replicas, steady state"),
    ("mfu", "model FLOPs utilisation: counted FLOPs per second per device over the device's peak"),
    ("peak_rss_mib", "peak resident memory of the largest process, MiB"),
    ("val_accuracy", "final validation accuracy"),
    ("val_bits_per_byte", "final validation loss in bits per byte (language models)"),
    ("final_loss", "training loss of the last step"),
)
FAIR = ("replicas", "global_batch_size", "steps")  # what a head-to-head of frameworks must hold equal
MARKDOWN = "comparison.md"
CSV = "comparison.csv"


def run_dirs(paths: Sequence[Path]) -> list[Path]:
    """Run directories: each path that holds a summary.json, else its subdirectories that do (a sweep)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "summary.json").is_file() or (path / ".hydra").is_dir() and not _children(path):
            found.append(path)
        else:
            found.extend(_children(path))
    return found


def _children(sweep: Path) -> list[Path]:
    subdirs = [p for p in sweep.iterdir() if p.is_dir() and ((p / "summary.json").is_file() or (p / ".hydra").is_dir())]
    return sorted(subdirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def common_overrides(dirs: Sequence[Path]) -> list[str]:
    """The overrides every run shares (shown once, above the table)."""
    overrides = [_overrides(d) for d in dirs]
    return [o for o in overrides[0] if all(o in other for other in overrides[1:])] if overrides else []


def rows(dirs: Sequence[Path]) -> tuple[list[dict[str, Any]], list[Path]]:
    """One row per run with a summary, and the runs without one (failed or still running)."""
    overrides = {d: _overrides(d) for d in dirs}
    common = set(common_overrides(dirs))
    table, missing = [], []
    for d in dirs:
        if not (d / "summary.json").is_file():
            missing.append(d)
            continue
        s = RunSummary.read(d)
        label = " ".join(o for o in overrides[d] if o not in common) or d.name
        table.append(
            {
                "run": label,
                "framework": s.framework,
                "strategy": s.strategy,
                "workload": _selected_workload(d) or s.workload,
                "processes": s.processes,
                "replicas": s.devices,
                "global_batch_size": s.global_batch_size,
                "steps": s.steps,
                "epoch_time_s": s.epoch_time_s,
                "samples_per_s": s.samples_per_s,
                "mfu": s.mfu,
                "peak_rss_mib": max(s.peak_rss_mib) if s.peak_rss_mib else None,
                "val_accuracy": s.val_accuracy,
                "val_bits_per_byte": s.extra.get("val_bits_per_byte"),
                "final_loss": s.final_loss,
            }
        )
    return table, missing


MEDIAN_OF = ("epoch_time_s", "samples_per_s", "mfu", "peak_rss_mib", "val_accuracy", "val_bits_per_byte", "final_loss")


def _selected_workload(run_dir: Path) -> str | None:
    """The workload as the command selected it (``digits_cnn``), which Hydra records; the config's own name can be
    shared by several selections (``digits``)."""
    try:
        import yaml

        hydra = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())
        return hydra["hydra"]["runtime"]["choices"]["workload"]
    except (OSError, KeyError, TypeError, ValueError, ImportError):
        return None


def unequal(table: Sequence[dict[str, Any]]) -> str | None:
    """Why a head-to-head of frameworks is not a fair one (devices, global batch or steps differ), or None."""
    if len({row["framework"] for row in table}) < 2:
        return None
    differ = [key for key in FAIR if len({row[key] for row in table}) > 1]
    if not differ:
        return None
    shown = "; ".join(f"{row['run']}: " + ", ".join(f"{key} {row[key]}" for key in differ) for row in table)
    return (
        f"not a fair head-to-head: the frameworks ran with different {', '.join(differ)} ({shown}); give every run "
        "the same devices (launcher.nproc_per_node, strategy.cpu_devices), train.global_batch_size and "
        "train.max_steps"
    )


def medians(table: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that differ only in their seed, folded into one row of medians (repeated rounds of a head-to-head)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in table:
        key = " ".join(o for o in row["run"].split() if not o.startswith("seed=")) or row["framework"]
        groups.setdefault(key, []).append(row)
    folded = []
    for key, members in groups.items():
        row = {**members[0], "run": f"{key} (median of {len(members)})"}
        for column in MEDIAN_OF:
            values = [m[column] for m in members if isinstance(m[column], (int, float))]
            row[column] = statistics.median(values) if values else None
        folded.append(row)
    return folded


def markdown(table: Sequence[dict[str, Any]]) -> str:
    headers = [name for name, _ in COLUMNS]
    cells = [[_cell(row[h]) for h in headers] for row in table]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join(lines)


def csv_text(table: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[name for name, _ in COLUMNS], lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def write(dirs: Sequence[Path], out_dir: Path) -> str | None:
    """Write comparison.md and comparison.csv into ``out_dir``; the markdown text, or None with no runs."""
    if not dirs:
        return None
    table, missing = rows(dirs)
    shared = common_overrides(dirs) if len(dirs) > 1 else []
    text = (f"Every run: {' '.join(shared)}\n\n" if shared else "") + markdown(table)
    if why := unequal(table):
        text = f"Warning: {why}.\n\n" + text
    folded = medians(table)
    if len(folded) < len(table):
        text += "\n\nMedians over seeds:\n\n" + markdown(folded)
    if missing:
        text += "\n\nNo summary.json (the run failed or is unfinished): " + ", ".join(str(d) for d in missing)
    text += "\n\n" + "; ".join(f"{name}: {meaning}" for name, meaning in COLUMNS[4:]) + ".\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKDOWN).write_text(text)
    (out_dir / CSV).write_text(csv_text(table))
    return text


class CompareRuns(Callback):
    """Hydra callback: after a multirun, the runs of the sweep side by side in the sweep directory."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        dirs = run_dirs([sweep]) if sweep.is_dir() else []
        submitted = [d for d in dirs if (d / "slurm_job_id").is_file() and not (d / "summary.json").is_file()]
        if submitted:  # launcher=slurm without waiting: a job on the cluster compares them once they all ended
            from scaletrain.driver.launchers import slurm_sweep

            slurm_sweep.compare_after(sweep.resolve(), submitted, config.get("launcher") or {})
            return
        text = write(dirs, sweep) if dirs else None
        if text is not None:
            print(f"\nruns side by side ({sweep / MARKDOWN}, {sweep / CSV}):\n\n{text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaletrain.compare", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories, or sweep directories holding them")
    parser.add_argument("--out", type=Path, help="where to write comparison.md/.csv (default: the first directory)")
    args = parser.parse_args(argv)
    absent = [d for d in args.dirs if not d.is_dir()]
    if absent:
        print(f"scaletrain: error: {absent[0]} is not a directory; give run or sweep directories.", file=sys.stderr)
        return 2
    text = write(run_dirs(args.dirs), args.out or args.dirs[0])
    if text is None:
        print(f"scaletrain: error: no runs found in {', '.join(map(str, args.dirs))}.", file=sys.stderr)
        return 2
    print(text)
    return 0


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
