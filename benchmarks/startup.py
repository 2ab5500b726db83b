"""Seconds from command start to the first finished training step, 2 local ranks: scaletrain against torchrun.

Each round runs, back to back (A B, then B A in the next round):

    python -m scaletrain +strategy=ddp launcher.nproc_per_node=2 workload=synthetic train.max_steps=5 ...
    torchrun --nproc-per-node 2 --master-port PORT benchmarks/plain_ddp_train.py --steps 5 ...

The figure is first_step_unix_s (rank 0's wall clock when its first optimizer step finished: summary.json
for scaletrain, the script's --out file for torchrun) minus time.time() just before the process was started.
Both get OMP_NUM_THREADS=1 (what each picks by itself for 2 ranks on 2 cores) and the same model, data and
batch. One untimed warm-up run of each comes first. Ratio = scaletrain / torchrun within a round, median
over rounds; target <= 1.0. The time until the command exits is shown for context.

    .venv/bin/python benchmarks/startup.py [--repeats N] [--quick]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common as c

TARGET = 1.0
STEPS = 5
TORCHRUN = str(Path(c.PYTHON).parent / "torchrun")
# The synthetic workload at its defaults, spelled out so both commands surely train the same thing.
WORKLOAD = {"num_samples": 8192, "input_dim": 256, "width": 512, "depth": 4, "num_classes": 10}


def scaletrain_cmd(out_dir: str) -> list[str]:
    return [
        c.PYTHON,
        "-m",
        "scaletrain",
        "+strategy=ddp",
        "launcher.nproc_per_node=2",
        "workload=synthetic",
        f"hydra.run.dir={out_dir}",
        f"train.max_steps={STEPS}",
        "train.global_batch_size=256",
        "train.optimizer=sgd",
        "train.lr=0.05",
        "train.momentum=0.9",
        "checkpoint.every_n_steps=0",
        "seed=0",
        *(f"workload.{k}={v}" for k, v in WORKLOAD.items()),
    ]


def torchrun_cmd(out: str) -> list[str]:
    return [
        TORCHRUN,
        "--nproc-per-node",
        "2",
        f"--master-port={c.free_port()}",
        str(c.BENCH_DIR / "plain_ddp_train.py"),
        f"--steps={STEPS}",
        "--global-batch-size=256",
        "--lr=0.05",
        "--momentum=0.9",
        "--seed=0",
        f"--out={out}",
        *(f"--{k.replace('_', '-')}={v}" for k, v in WORKLOAD.items()),
    ]


def run_scaletrain(env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        ran = c.run(scaletrain_cmd(tmp), env)
        summary = c.read_json(Path(tmp) / "summary.json")
    return {"first_step_s": summary["first_step_unix_s"] - ran.started_unix_s, "exit_s": ran.wall_s}


def run_torchrun(env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        out = Path(tmp) / "first_step.json"
        ran = c.run(torchrun_cmd(str(out)), env)
        result = c.read_json(out)
    return {"first_step_s": result["first_step_unix_s"] - ran.started_unix_s, "exit_s": ran.wall_s}


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=7, quick_repeats=2)
    env = c.bench_env(1)
    c.log(f"startup: 2 ranks, {STEPS} steps, {args.repeats} rounds")
    res = c.interleave(
        {"scaletrain": lambda _: run_scaletrain(env), "torchrun": lambda _: run_torchrun(env)},
        args.repeats,
        warmup=True,
        quiet=not args.quick,
    )
    rows = []
    for name, runs in res.items():
        first = [r["first_step_s"] for r in runs]
        rows.append([name, c.median(first), c.spread(first), c.median([r["exit_s"] for r in runs])])
    per_round = c.ratios(res["scaletrain"], res["torchrun"], "first_step_s")
    ratio = c.median(per_round)
    print(
        f"\nstartup to first step, 2 local ranks (gloo), OMP_NUM_THREADS=1, {args.repeats} interleaved rounds, "
        f"medians; {c.machine()}\n"
    )
    print(c.table(["launcher", "to first step s", "min–max s", "to exit s"], rows))
    print(
        f"\nratio scaletrain / torchrun (time to first step): {ratio:.3f} (per round {c.spread(per_round)}), "
        f"target {c.verdict(ratio, TARGET)}"
    )


if __name__ == "__main__":
    main()
