"""Seconds from command to first training step: scaletrain's launcher=ray against Ray Train's TorchTrainer.

Both run the same workload (synthetic MLP 256-256x3-10, global batch 64, 2 ranks of 1 CPU, DDP over gloo) on the
same local Ray cluster (one node, started once by this script), each from a fresh Python process:

    python -m scaletrain +strategy=ddp workload=synthetic ... launcher=ray launcher.address=ADDR launcher.nproc=2
    python benchmarks/ray_train_baseline.py --address ADDR --workers 2 ...

The clock starts just before the process is spawned and stops at rank 0's first finished optimizer step
(summary.json's first_step_unix_s; the baseline writes the same). One warm-up run of each is left out; then
interleaved rounds; ratio = scaletrain / TorchTrainer within a round, median over rounds; target <= 0.8.

    .venv/bin/python benchmarks/ray_startup.py [--repeats N] [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _common as c
import _ray

TARGET = 0.8
STEPS = 20


def run_scaletrain(address: str, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-ray-start-") as tmp:
        started = time.time()
        c.run(_ray.scaletrain_cmd(tmp, STEPS, *_ray.on_ray(address)), env)
        ended = time.time()
        summary = c.read_json(Path(tmp) / "summary.json")
    return {"first_step_s": summary["first_step_unix_s"] - started, "command_s": ended - started}


def run_ray_train(address: str, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-ray-train-") as tmp:
        out = Path(tmp) / "result.json"
        workload = [f"--{k.replace('_', '-')}={v}" for k, v in _ray.WORKLOAD.items()]
        cmd = [
            c.PYTHON,
            str(c.BENCH_DIR / "ray_train_baseline.py"),
            f"--address={address}",
            f"--workers={_ray.RANKS}",
            f"--steps={STEPS}",
            f"--global-batch={_ray.GLOBAL_BATCH}",
            *workload,
            f"--out={out}",
        ]
        started = time.time()
        c.run(cmd, env)
        ended = time.time()
        result = c.read_json(out)
    return {"first_step_s": result["first_step_unix_s"] - started, "command_s": ended - started}


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=7, quick_repeats=3, extra=_ray.add_niceness)
    env = c.bench_env(1)
    with _ray.local_cluster(_ray.RANKS, 1, args.worker_niceness) as address:
        c.log(f"local Ray cluster at {address}; warm-up run of each")
        run_scaletrain(address, env)
        run_ray_train(address, env)
        res = c.interleave(
            {
                "scaletrain launcher=ray": lambda _: run_scaletrain(address, env),
                "Ray Train TorchTrainer": lambda _: run_ray_train(address, env),
            },
            args.repeats,
        )
    st, rt = res["scaletrain launcher=ray"], res["Ray Train TorchTrainer"]
    ratio = c.paired_ratio(st, rt, "first_step_s")
    rows = [
        [
            name,
            c.median([r["first_step_s"] for r in runs]),
            c.spread([r["first_step_s"] for r in runs]),
            c.median([r["command_s"] for r in runs]),
        ]
        for name, runs in res.items()
    ]
    print(
        f"\nstart-up to first training step, {_ray.RANKS} ranks on one local Ray node, {args.repeats} interleaved "
        f"rounds, medians; {c.machine()}; Ray worker niceness {_ray.niceness(args)}\n"
    )
    print(c.table(["launcher", "command → first step (s)", "range (s)", "whole command (s)"], rows))
    print(f"\nratio scaletrain / TorchTrainer (per round, median): {ratio:.3f}; target {c.verdict(ratio, TARGET)}")


if __name__ == "__main__":
    main()
