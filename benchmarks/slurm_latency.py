"""Time to the first training step through SLURM against the local launcher, and the requeue turnaround.

Needs the local cluster (bash slurm/local-cluster.sh start). Each round runs, interleaved, the same 2-rank job

    python -m scaletrain launcher=slurm launcher.nodes=2 launcher.wait=true +strategy=ddp workload=linear ...
    python -m scaletrain launcher.nproc_per_node=2 +strategy=ddp workload=linear ...

and reports command start -> first optimizer step (first_step_unix_s in summary.json) and command start -> exit.
Then, per round, one job gets `scancel --batch --signal=USR1` once it is training: signal -> resumed first step
(stop at the next step + checkpoint + scontrol requeue + SLURM's requeue delay + restart).

    .venv/bin/python benchmarks/slurm_latency.py [--repeats N] [--quick] [--tasks-per-node K] [--no-requeue]

``--tasks-per-node K`` runs K tasks on each of the 2 nodes (and 2K local ranks); ``--no-requeue`` skips the requeue
turnaround.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import _common as c

COMMON = (
    "+strategy=ddp",
    "workload=linear",
    "train.epochs=50",
    "checkpoint.every_n_steps=0",
    "train.global_batch_size=8",
)


def _cli(out_dir: str, *overrides: str) -> list[str]:
    return [c.PYTHON, "-m", "scaletrain", f"hydra.run.dir={out_dir}", *COMMON, *overrides]


def trial(*overrides: str):
    def run(_round: int) -> dict[str, float]:
        with tempfile.TemporaryDirectory() as tmp:  # the local cluster's nodes are this machine
            started = time.time()
            c.run(_cli(tmp, *overrides), c.bench_env(omp_threads=1))
            ended = time.time()
            summary = c.read_json(Path(tmp) / "summary.json")
        return {"first_step_s": summary["first_step_unix_s"] - started, "total_s": ended - started}

    return run


def requeue_turnaround() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        c.run(_cli(tmp, "launcher=slurm", "launcher.nodes=2", "train.epochs=3000"), c.bench_env(omp_threads=1))
        job_id = (run_dir / "slurm_job_id").read_text().strip()
        metrics = run_dir / "metrics.jsonl"
        while not metrics.exists() or len(metrics.read_text().splitlines()) < 2:
            time.sleep(0.1)
        signalled = time.time()
        subprocess.run(["scancel", "--batch", "--signal=USR1", job_id], check=True)
        while subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip():
            time.sleep(0.5)
        summary = c.read_json(run_dir / "summary.json")
        log = (run_dir / f"slurm-{job_id}.out").read_text()
        assert summary["attempt"] == 1 and "resumed from" in log, log
    return {"resumed_first_step_s": summary["first_step_unix_s"] - signalled}


def _options(parser) -> None:
    parser.add_argument("--tasks-per-node", type=int, default=1, help="SLURM tasks on each of the 2 nodes")
    parser.add_argument("--no-requeue", action="store_true", help="skip the USR1 -> resumed first step figure")


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=5, quick_repeats=2, extra=_options)
    per_node = args.tasks_per_node
    slurm = trial("launcher=slurm", "launcher.nodes=2", f"launcher.ntasks_per_node={per_node}", "launcher.wait=true")
    local = trial(f"launcher.nproc_per_node={2 * per_node}")
    res = c.interleave({f"slurm (2 nodes x {per_node} task)": slurm, f"local ({2 * per_node} ranks)": local},
                       args.repeats)  # fmt: skip
    turnaround = [] if args.no_requeue else [requeue_turnaround() for _ in range(args.repeats)]
    rows = [
        [name, c.median([r["first_step_s"] for r in res[name]]), c.spread([r["first_step_s"] for r in res[name]]),
         c.median([r["total_s"] for r in res[name]])]
        for name in res
    ]  # fmt: skip
    print(f"Machine: {c.machine()}; {args.repeats} rounds.\n")
    print(c.table(["launcher", "start -> first step s (median)", "range", "start -> exit s (median)"], rows))
    on_slurm, on_local = res.values()
    extra = c.median([a["first_step_s"] - b["first_step_s"] for a, b in zip(on_slurm, on_local, strict=True)])
    print(f"\nSLURM adds {extra:.2f} s before the first step (median of per-round differences).")
    if turnaround:
        resumed = [t["resumed_first_step_s"] for t in turnaround]
        print(f"USR1 -> resumed first step: median {c.median(resumed):.2f} s (range {c.spread(resumed)}).")


if __name__ == "__main__":
    main()
