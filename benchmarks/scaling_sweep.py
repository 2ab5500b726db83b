"""The scaling sweep on this machine (1 and 2 devices) for ddp, mirrored and xla: measured beside the α-β prediction.

    python benchmarks/scaling_sweep.py [--repeats N] [--quick]

Each repeat is one real `python -m scaletrain ... scaling.device_counts=[1,2]` per strategy, the strategies
interleaved within a repeat; the figures are medians over repeats. ddp: 1 and 2 ranks over gloo; mirrored: 1 and
2 processes (MultiWorkerMirrored); xla: 1 and 2 XLA CPU devices in one process.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import PYTHON, bench_env, log, machine, median, parse_args, read_json, run, spread, table, wait_for_quiet

COLUMNS = (
    "samples_per_s",
    "samples_per_s_per_device",
    "efficiency",
    "predicted_efficiency",
    "comm_fraction",
    "data_fraction",
    "compute_slowdown",
)


STRATEGIES = {
    "ddp": ("+strategy=ddp",),
    "mirrored": ("+strategy=mirrored",),
    "xla": ("+strategy=xla", "strategy.device=CPU"),
}


def sweep(out: Path, quick: bool, strategy: tuple[str, ...]) -> dict:
    cmd = [
        PYTHON,
        "-m",
        "scaletrain",
        f"hydra.run.dir={out}",
        *strategy,
        "workload=synthetic",
        "scaling.device_counts=[1,2]",
        "train.epochs=1" if quick else "train.epochs=3",
        "logger=none",
    ]
    run(cmd, bench_env(omp_threads=1))
    return read_json(out / "scaling.json")


def _median(values: list) -> float | None:
    """The median, or None where a strategy does not measure the figure (the comm split under TF and XLA)."""
    return None if None in values else median(values)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    results: dict[str, list[dict]] = {name: [] for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, strategy in STRATEGIES.items():
                wait_for_quiet()
                results[name].append(sweep(Path(tmp) / f"{name}{i}", args.quick, strategy))
                efficiency = results[name][-1]["rows"][1]["efficiency"]
                log(f"  repeat {i + 1}/{args.repeats} {name}: efficiency at N=2 {efficiency:.3f}")
    print(f"machine: {machine()}; {args.repeats} repeat(s), medians; workload synthetic (defaults), weak scaling\n")
    rows = []
    for name, runs in results.items():
        for n_index in (0, 1):
            per_repeat = [r["rows"][n_index] for r in runs]
            rows.append([name, per_repeat[0]["devices"], *(_median([p[c] for p in per_repeat]) for c in COLUMNS)])
    print(table(["strategy", "N", *COLUMNS], rows))
    for name, runs in results.items():
        fits = [r["alpha_beta"] for r in runs]
        print(
            f"\n{name}: α-β fit at N=2 (median): α = {median([f['alpha_s'] for f in fits]) * 1e6:.1f} µs per ring "
            f"step, bandwidth = {median([f['bandwidth_gbit_per_s'] for f in fits]):.2f} Gbit/s; "
            f"efficiency at N=2 over repeats: {spread([r['rows'][1]['efficiency'] for r in runs])}"
        )


if __name__ == "__main__":
    main()
