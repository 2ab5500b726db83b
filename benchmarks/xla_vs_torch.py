"""Step time and compile time of +strategy=xla against plain PyTorch on the same workload and the same loop.

Alternatives, run interleaved within each round (each is one `python -m scaletrain` process, 1 process):
  torch   +strategy=ddp, launcher.nproc_per_node=1: eager PyTorch (no DDP wrapper at world size 1; loop_overhead.py
          shows that loop within 1% of a hand-written one)
  xla-1   +strategy=xla on one XLA device
  xla-N   +strategy=xla, SPMD over N XLA devices (CPU: strategy.num_devices=N; skipped for --device CUDA)
Same synthetic MLP, data, seed, optimizer and batch. Step time is scaletrain's steady state (summary.json
step_time_s: the first log window, where the graphs compile, left out); compile time is torch_xla's CompileTime
total (summary.json compile_time_s); wall time is the whole command, start-up included. Ratio = xla / torch within
a round, median over rounds; the window ratio uses each run's median over its 20-step windows (metrics.jsonl),
which shrugs off bursts of load from other processes on a shared machine.

    .venv/bin/python benchmarks/xla_vs_torch.py [--repeats N] [--quick] [--device CPU|CUDA] [--devices N]
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _common as c

NUM_SAMPLES = 8192
WINDOW = 20


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
    Model("medium", input_dim=256, width=512, depth=4, batch=256, steps=400, quick_steps=100),
    Model("small", input_dim=32, width=32, depth=1, batch=32, steps=1000, quick_steps=200),
)


def command(model: Model, steps: int, out_dir: str, strategy: list[str]) -> list[str]:
    epochs = math.ceil(steps * model.batch / NUM_SAMPLES) + 1  # train.max_steps ends the run
    return [
        c.PYTHON, "-m", "scaletrain", *strategy, "workload=synthetic", f"hydra.run.dir={out_dir}",
        f"train.max_steps={steps}", f"train.epochs={epochs}", f"train.global_batch_size={model.batch}",
        "train.optimizer=sgd", "train.lr=0.05", "train.momentum=0.9", f"train.log_every_n_steps={WINDOW}",
        "checkpoint.every_n_steps=0", "seed=0", f"workload.num_samples={NUM_SAMPLES}",
        f"workload.input_dim={model.input_dim}", f"workload.width={model.width}", f"workload.depth={model.depth}",
        "workload.num_classes=10",
    ]  # fmt: skip


def run_one(model: Model, steps: int, strategy: list[str], env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-xla-") as tmp:
        started = time.perf_counter()
        c.run(command(model, steps, tmp, strategy), env)
        wall = time.perf_counter() - started
        s = c.read_json(Path(tmp) / "summary.json")
        records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    windows = [r["step_time_s"] for r in records if "step_time_s" in r][1:]  # the first window is warm-up
    if s["steps"] != steps:
        raise RuntimeError(f"ran {s['steps']} steps, not {steps}")
    return {
        "step_time_s": s["step_time_s"],
        "window_median_s": c.median(windows),
        "compile_time_s": s.get("compile_time_s", 0.0),
        "compiles": s.get("compiles", 0),
        "wall_s": wall,
        "final_loss": s["final_loss"],
    }


def alternatives(device: str, devices: int) -> dict[str, list[str]]:
    torch = ["+strategy=ddp", "launcher.nproc_per_node=1"]
    if device == "CUDA":
        return {"torch": torch, "xla-1": ["+strategy=xla", "strategy.device=CUDA"]}
    xla = ["+strategy=xla", "strategy.device=CPU"]
    return {
        "torch": torch,
        "xla-1": [*xla, "strategy.num_devices=1"],
        f"xla-{devices}": [*xla, f"strategy.num_devices={devices}"],
    }


def _options(parser) -> None:
    parser.add_argument("--device", default="CPU", choices=("CPU", "CUDA"), help="where both alternatives run")
    parser.add_argument("--devices", type=int, default=2, help="XLA CPU devices of the SPMD alternative")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of every alternative")


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=5, quick_repeats=2, extra=_options)
    env = c.bench_env(args.threads)
    rows = []
    for model in MODELS:
        steps = model.quick_steps if args.quick else model.steps
        c.log(f"{model.name}: {model.describe()}, {steps} steps, {args.device}, OMP_NUM_THREADS={args.threads}")
        trials = {
            name: (lambda _, m=model, s=steps, st=strategy: run_one(m, s, st, env))
            for name, strategy in alternatives(args.device, args.devices).items()
        }
        res = c.interleave(trials, args.repeats)
        for name, runs in res.items():
            ratio = c.paired_ratio(runs, res["torch"], "step_time_s")
            window_ratio = c.paired_ratio(runs, res["torch"], "window_median_s")
            rows.append([
                f"{model.name}: {model.describe()}, {steps} steps",
                name,
                1e3 * c.median([r["step_time_s"] for r in runs]),
                1e3 * c.median([r["window_median_s"] for r in runs]),
                f"{ratio:.3f}",
                f"{window_ratio:.3f}",
                c.median([r["compile_time_s"] for r in runs]),
                int(c.median([r["compiles"] for r in runs])),
                c.median([r["wall_s"] for r in runs]),
                c.median([r["final_loss"] for r in runs]),
            ])  # fmt: skip
    print(
        f"\nxla vs torch, 1 process, {args.device}, OMP_NUM_THREADS={args.threads}, {args.repeats} interleaved "
        f"rounds, medians; {c.machine()}\n"
    )
    headers = ["model", "alternative", "ms/step", "window-median ms/step", "ratio vs torch", "window ratio",
               "compile s", "compiles", "wall s", "loss"]  # fmt: skip
    print(c.table(headers, rows))


if __name__ == "__main__":
    main()
