"""The scaling sweep on this machine (1 and 2 ranks, gloo): measured efficiency beside the α-β prediction.

    python benchmarks/scaling_sweep.py [--repeats N] [--quick]

Each repeat is one real `python -m scaletrain ... scaling.world_sizes=[1,2]`; the figures are medians over repeats.
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


def sweep(out: Path, quick: bool) -> dict:
    cmd = [
        PYTHON,
        "-m",
        "scaletrain",
        f"hydra.run.dir={out}",
        "+strategy=ddp",
        "workload=synthetic",
        "scaling.world_sizes=[1,2]",
        "train.epochs=1" if quick else "train.epochs=3",
        "logger=none",
    ]
    run(cmd, bench_env(omp_threads=1))
    return read_json(out / "scaling.json")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            wait_for_quiet()
            results.append(sweep(Path(tmp) / f"sweep{i}", args.quick))
            log(f"  repeat {i + 1}/{args.repeats}: efficiency at N=2 {results[-1]['rows'][1]['efficiency']:.3f}")
    rows = []
    for n_index in (0, 1):
        per_repeat = [r["rows"][n_index] for r in results]
        rows.append([per_repeat[0]["world_size"], *(median([p[c] for p in per_repeat]) for c in COLUMNS)])
    print(f"machine: {machine()}; {args.repeats} repeat(s), medians; workload synthetic (defaults), weak scaling\n")
    print(table(["N", *COLUMNS], rows))
    fits = [r["alpha_beta"] for r in results]
    print(
        f"\nα-β fit at N=2 (median): α = {median([f['alpha_s'] for f in fits]) * 1e6:.1f} µs per ring step, "
        f"bandwidth = {median([f['bandwidth_gbit_per_s'] for f in fits]):.2f} Gbit/s; "
        f"efficiency at N=2 over repeats: {spread([r['rows'][1]['efficiency'] for r in results])}"
    )


if __name__ == "__main__":
    main()
