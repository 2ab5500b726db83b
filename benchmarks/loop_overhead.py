"""Per-step overhead of scaletrain's training loop against a hand-written PyTorch loop (1 rank, CPU).

Each round runs, in separate subprocesses and back to back, the real CLI

    python -m scaletrain +strategy=ddp workload=synthetic launcher.nproc_per_node=1 train.max_steps=N ...

(step_time_s from summary.json: steady state, the first log window left out) and benchmarks/plain_train.py
(same arrays, model, seed, SGD momentum 0.9 lr 0.05, batch size and per-epoch randperm; its first window
left out too), both with the same OMP_NUM_THREADS. Both must end on the same final loss, proof that they
did the same work. Ratio = scaletrain / plain within a round, median over rounds; target <= 1.01.

A second ratio uses the median over the log windows (10 steps) of each run (metrics.jsonl for scaletrain,
the same windows for the plain loop): it shrugs off bursts of load from other processes on a shared machine.

    .venv/bin/python benchmarks/loop_overhead.py [--repeats N] [--quick] [--threads T]
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import _common as c

TARGET = 1.01
NUM_SAMPLES = 8192
WINDOW = 10  # the synthetic workload's train.log_every_n_steps: scaletrain's timing window (--log-every)


@dataclass(frozen=True)
class Model:
    name: str
    input_dim: int
    width: int
    depth: int
    batch: int
    steps: int
    quick_steps: int

    def describe(self) -> str:
        return f"MLP {self.input_dim}-{self.width}x{self.depth}-10, batch {self.batch}"


MODELS = (
    Model("medium", input_dim=256, width=512, depth=4, batch=256, steps=600, quick_steps=150),
    Model("small", input_dim=32, width=32, depth=1, batch=32, steps=4000, quick_steps=1000),
)


def scaletrain_cmd(model: Model, steps: int, window: int, out_dir: str) -> list[str]:
    epochs = math.ceil(steps * model.batch / NUM_SAMPLES) + 1  # train.max_steps is what ends the run
    return [
        c.PYTHON, "-m", "scaletrain", "+strategy=ddp", "workload=synthetic", "launcher.nproc_per_node=1",
        f"hydra.run.dir={out_dir}", f"train.max_steps={steps}", f"train.epochs={epochs}",
        f"train.global_batch_size={model.batch}", "train.optimizer=sgd", "train.lr=0.05",
        "train.momentum=0.9", f"train.log_every_n_steps={window}", "checkpoint.every_n_steps=0", "seed=0",
        f"workload.num_samples={NUM_SAMPLES}", f"workload.input_dim={model.input_dim}",
        f"workload.width={model.width}", f"workload.depth={model.depth}", "workload.num_classes=10",
    ]


def plain_cmd(model: Model, steps: int, window: int, out: str) -> list[str]:
    return [
        c.PYTHON, str(c.BENCH_DIR / "plain_train.py"), f"--num-samples={NUM_SAMPLES}",
        f"--input-dim={model.input_dim}", f"--width={model.width}", f"--depth={model.depth}",
        "--num-classes=10", f"--batch-size={model.batch}", "--lr=0.05", "--momentum=0.9", "--seed=0",
        f"--steps={steps}", f"--window={window}", f"--out={out}",
    ]


def run_scaletrain(model: Model, steps: int, window: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        c.run(scaletrain_cmd(model, steps, window, tmp), env)
        summary = c.read_json(Path(tmp) / "summary.json")
        records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    if summary["steps"] != steps:
        raise RuntimeError(f"scaletrain ran {summary['steps']} steps, not {steps}")
    windows = [r["step_time_s"] for r in records if "step_time_s" in r][1:]  # the first window is warm-up
    return {
        "step_time_s": summary["step_time_s"],
        "window_median_s": c.median(windows),
        "final_loss": summary["final_loss"],
    }


def run_plain(model: Model, steps: int, window: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-plain-") as tmp:
        out = Path(tmp) / "result.json"
        c.run(plain_cmd(model, steps, window, str(out)), env)
        result = c.read_json(out)
    return {
        "step_time_s": result["step_time_s"],
        "window_median_s": c.median(result["window_step_times_s"]),
        "final_loss": result["final_loss"],
    }


def _add_options(parser) -> None:
    parser.add_argument(
        "--threads", type=int, default=2, help="OMP_NUM_THREADS of both (2: scaletrain's for 1 rank)"
    )
    parser.add_argument(
        "--log-every", type=int, default=WINDOW, help=f"train.log_every_n_steps = timing window (default {WINDOW})"
    )


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=9, quick_repeats=3, extra=_add_options)
    env = c.bench_env(args.threads)
    rows, verdicts = [], []
    for model in MODELS:
        steps = model.quick_steps if args.quick else model.steps
        steps = max(2, round(steps / args.log_every)) * args.log_every  # whole windows, at least two
        c.log(f"{model.name}: {model.describe()}, {steps} steps, OMP_NUM_THREADS={args.threads}")
        res = c.interleave(
            {
                "scaletrain": lambda _, m=model, s=steps: run_scaletrain(m, s, args.log_every, env),
                "plain": lambda _, m=model, s=steps: run_plain(m, s, args.log_every, env),
            },
            args.repeats,
        )
        st, pl = res["scaletrain"], res["plain"]
        ratio = c.paired_ratio(st, pl, "step_time_s")
        window_ratio = c.paired_ratio(st, pl, "window_median_s")
        same_loss = all(a["final_loss"] == b["final_loss"] for a, b in zip(st, pl, strict=True))
        rows.append([
            f"{model.name}: {model.describe()}, {steps} steps",
            1e3 * c.median([r["step_time_s"] for r in st]),
            1e3 * c.median([r["step_time_s"] for r in pl]),
            f"{ratio:.4f}",
            f"{window_ratio:.4f}",
            "yes" if same_loss else "NO",
        ])
        verdict = c.verdict(ratio, TARGET)
        verdicts.append(f"{model.name}: ratio {ratio:.4f} (per-window {window_ratio:.4f}), target {verdict}")
    print(f"\nloop overhead, 1 rank, OMP_NUM_THREADS={args.threads}, log_every_n_steps={args.log_every}, "
          f"{args.repeats} interleaved rounds, "
          f"medians; {c.machine()}\n")
    headers = ["model", "scaletrain ms/step", "plain ms/step", "ratio", "per-window ratio", "same final loss"]
    print(c.table(headers, rows))
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
