"""Per-step throughput of training under launcher=ray against the local launcher, same workload and ranks.

Each round runs, back to back, the same job (synthetic MLP 256-256x3-10, global batch 64, 2 ranks, DDP over gloo,
OMP_NUM_THREADS=1 per rank) with the local launcher and with launcher=ray on a local Ray cluster (one node with 2
CPUs, started once by this script). The figure is the steady-state samples_per_s of summary.json (first log window
left out); two more take the median and the best of the 10-step windows of metrics.jsonl. Ratio = ray / local
within a round, median over rounds; target >= 0.98. On a machine shared with other work these swing by tens of
percent, so --aa runs the local launcher against itself: the spread of that A/A ratio is the noise band. The CPU
the launcher itself uses while the ranks train (the driver; for Ray also the rank actors), read from /proc in the
middle 60% of the run, is what it can take away from the ranks whatever the load.

    .venv/bin/python benchmarks/ray_throughput.py [--repeats N] [--quick]
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import _common as c
import _ray

TARGET = 0.98


def run(env: dict[str, str], steps: int, *launcher: str) -> dict[str, float]:
    """One job; its wall-clock figures, and the CPU its launcher (driver, and Ray's rank actors) used between steps
    ``steps // 5`` and ``4 * steps // 5`` (every process alive at both ends of that window), as % of one core."""
    window = (steps // 5, 4 * steps // 5)
    with tempfile.TemporaryDirectory(prefix="bench-ray-tput-") as tmp:
        metrics = Path(tmp) / "metrics.jsonl"
        proc = subprocess.Popen(
            _ray.scaletrain_cmd(tmp, steps, *launcher),
            cwd=c.ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        marks = []
        while proc.poll() is None:
            reached = _last_step(metrics)
            if len(marks) < 2 and reached >= window[len(marks)]:
                marks.append((time.perf_counter(), _ray.cpu_by_role(proc.pid)))
            time.sleep(0.02)
        if proc.returncode != 0 or len(marks) < 2:
            raise RuntimeError(f"exit code {proc.returncode}: {' '.join(launcher)}")
        summary = c.read_json(Path(tmp) / "summary.json")
        records = [json.loads(line) for line in metrics.read_text().splitlines()]
    windows = [r["samples_per_s"] for r in records if "samples_per_s" in r][1:]
    (time_a, cpu_a), (time_b, cpu_b) = marks
    launcher_cpu_s = sum(cpu_b[role] - cpu_a[role] for role in ("driver", "actors"))
    return {
        "samples_per_s": summary["samples_per_s"],
        "window_median": c.median(windows),
        "best_window": max(windows),
        "final_loss": summary["final_loss"],
        "launcher_cpu_pct": 100 * launcher_cpu_s / (time_b - time_a),  # of one core: what it takes from the ranks
    }


def _last_step(metrics: Path) -> int:
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line)["step"] for line in lines if line.strip().endswith("}")]
    return max(steps, default=0)


def _options(parser) -> None:
    _ray.add_niceness(parser)
    parser.add_argument(
        "--aa", action="store_true", help="control run: the local launcher against itself, to show the noise band"
    )


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=7, quick_repeats=3, extra=_options)
    steps = 150 if args.quick else 600
    env = c.bench_env(1)
    a_name, b_name = ("local (A)", "local (B)") if args.aa else ("launcher=ray", "launcher=local")
    with _ray.local_cluster(_ray.RANKS, 1, args.worker_niceness) as address:
        first = _ray.on_local() if args.aa else _ray.on_ray(address)
        res = c.interleave(
            {a_name: lambda _: run(env, steps, *first), b_name: lambda _: run(env, steps, *_ray.on_local())},
            args.repeats,
        )
    a_runs, b_runs = res[a_name], res[b_name]
    # Throughput ratios: higher is better, so A / B (the inverse of a time-per-step ratio).
    ratios = {key: c.paired_ratio(a_runs, b_runs, key) for key in ("samples_per_s", "window_median", "best_window")}
    same = all(x["final_loss"] == y["final_loss"] for x, y in zip(a_runs, b_runs, strict=True))
    rows = [
        [
            name,
            c.median([r["samples_per_s"] for r in runs]),
            c.spread([r["samples_per_s"] for r in runs]),
            c.median([r["window_median"] for r in runs]),
            c.median([r["best_window"] for r in runs]),
            c.median([r["launcher_cpu_pct"] for r in runs]),
        ]
        for name, runs in res.items()
    ]
    print(
        f"\nper-step throughput, {_ray.RANKS} ranks, {steps} steps, {args.repeats} interleaved rounds, medians; "
        f"{c.machine()}; Ray worker niceness {_ray.niceness(args)}\n"
    )
    headers = ["launcher", "samples_per_s", "range", "median window", "best window", "launcher CPU (% of a core)"]
    print(c.table(headers, rows))
    print(f"\nsame final loss in every round: {'yes' if same else 'NO'}")
    per_round = [x["samples_per_s"] / y["samples_per_s"] for x, y in zip(a_runs, b_runs, strict=True)]
    print(
        f"wall-clock ratio {a_name} / {b_name} (per round, median): {ratios['samples_per_s']:.4f}, rounds "
        f"{c.spread(per_round)} (median window {ratios['window_median']:.4f}, best window {ratios['best_window']:.4f})"
    )
    if not args.aa:
        print(f"target >= {TARGET}: {'met' if ratios['samples_per_s'] >= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
