"""Per-step throughput of training under launcher=ray against the local launcher, same workload and ranks.

Each round runs, back to back, the same job (synthetic MLP 256-256x3-10, global batch 64, 2 ranks, DDP over gloo,
OMP_NUM_THREADS=1 per rank) with the local launcher and with launcher=ray on a local Ray cluster (one node with 2
CPUs, started once by this script). The figure is the steady-state samples_per_s of summary.json (first log window
left out); two more take the median and the best of the 10-step windows of metrics.jsonl, which shrug off bursts
of load on a shared machine (the best window is what the run does when nothing else interferes).
Ratio = ray / local within a round, median over rounds; target >= 0.98.

    .venv/bin/python benchmarks/ray_throughput.py [--repeats N] [--quick]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import _common as c
import _ray

TARGET = 0.98


def run(env: dict[str, str], steps: int, *launcher: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-ray-tput-") as tmp:
        c.run(_ray.scaletrain_cmd(tmp, steps, *launcher), env)
        summary = c.read_json(Path(tmp) / "summary.json")
        records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    windows = [r["samples_per_s"] for r in records if "samples_per_s" in r][1:]
    return {
        "samples_per_s": summary["samples_per_s"],
        "window_median": c.median(windows),
        "best_window": max(windows),
        "final_loss": summary["final_loss"],
    }


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=7, quick_repeats=3, extra=_ray.add_niceness)
    steps = 150 if args.quick else 600
    env = c.bench_env(1)
    with _ray.local_cluster(_ray.RANKS, 1, args.worker_niceness) as address:
        res = c.interleave(
            {
                "launcher=ray": lambda _: run(env, steps, *_ray.on_ray(address)),
                "launcher=local": lambda _: run(env, steps, *_ray.on_local()),
            },
            args.repeats,
        )
    ray_runs, local_runs = res["launcher=ray"], res["launcher=local"]
    # Throughput ratio: higher is better, so ray / local (the inverse of a step-time ratio).
    ratio = c.paired_ratio(ray_runs, local_runs, "samples_per_s")
    window_ratio = c.paired_ratio(ray_runs, local_runs, "window_median")
    best_ratio = c.paired_ratio(ray_runs, local_runs, "best_window")
    same = all(a["final_loss"] == b["final_loss"] for a, b in zip(ray_runs, local_runs, strict=True))
    rows = [
        [
            name,
            c.median([r["samples_per_s"] for r in runs]),
            c.spread([r["samples_per_s"] for r in runs]),
            c.median([r["window_median"] for r in runs]),
            c.median([r["best_window"] for r in runs]),
        ]
        for name, runs in res.items()
    ]
    print(
        f"\nper-step throughput, {_ray.RANKS} ranks, {steps} steps, {args.repeats} interleaved rounds, medians; "
        f"{c.machine()}; Ray worker niceness {_ray.niceness(args)}\n"
    )
    print(c.table(["launcher", "samples_per_s", "range", "median window", "best window"], rows))
    print(f"\nsame final loss in every round: {'yes' if same else 'NO'}")
    ok = ratio >= TARGET
    print(
        f"ratio ray / local (per round, median): {ratio:.4f} (median window {window_ratio:.4f}, best window "
        f"{best_ratio:.4f}); target >= {TARGET}: "
        f"{'met' if ok else f'MISSED by {100 * (1 - ratio / TARGET):.1f}%'}"
    )


if __name__ == "__main__":
    main()
