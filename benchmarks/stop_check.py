"""Cost of the per-step stop check: ranks agreeing every step whether a stop was requested (SLURM's warning signal).

With 2 DDP ranks (gloo, CPU) each round runs the real CLI twice, back to back and interleaved:

    python -m scaletrain +strategy=ddp workload=synthetic launcher.nproc_per_node=2 ...
        checkpoint.stop_check_every_n_steps=1     # the default: one 1-element all-reduce per step
        checkpoint.stop_check_every_n_steps=0     # never checked: the loop before this feature

Figure: step_time_s (summary.json, steady state) of "every step" over "never", median of the per-round ratios,
and the same ratio over the median 10-step window (metrics.jsonl), which shrugs off bursts of load from other
processes. Both runs must end on the same final loss (the check changes nothing in the training).

    .venv/bin/python benchmarks/stop_check.py [--repeats N] [--quick]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import _common as c

TARGET = 1.02  # at most 2% slower per step for a tiny model, where a per-step collective weighs the most
MODELS = {  # name -> (width, depth, per-rank batch, steps, quick steps)
    "tiny": (32, 1, 16, 3000, 800),
    "medium": (512, 4, 128, 400, 120),
}


def cmd(model: str, every: int, steps: int, out_dir: str) -> list[str]:
    width, depth, batch, _, _ = MODELS[model]
    return [
        c.PYTHON, "-m", "scaletrain", "+strategy=ddp", "workload=synthetic", "launcher.nproc_per_node=2",
        f"hydra.run.dir={out_dir}", f"train.max_steps={steps}", "train.epochs=1000",
        f"train.global_batch_size={2 * batch}", "train.log_every_n_steps=10", "checkpoint.every_n_steps=0",
        f"checkpoint.stop_check_every_n_steps={every}", "seed=0", "workload.num_samples=4096",
        "workload.input_dim=32", f"workload.width={width}", f"workload.depth={depth}",
    ]  # fmt: skip


def trial(model: str, every: int, steps: int):
    def run(_round: int) -> dict[str, float]:
        with tempfile.TemporaryDirectory() as tmp:
            c.run(cmd(model, every, steps, tmp), c.bench_env(omp_threads=1))
            summary = c.read_json(Path(tmp) / "summary.json")
            lines = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
            windows = [line["step_time_s"] for line in lines if "step_time_s" in line][1:]  # no start-up window
        return {"step_time_s": summary["step_time_s"], "window_s": c.median(windows), "loss": summary["final_loss"]}

    return run


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=6, quick_repeats=2)
    rows = []
    for model, (_, _, batch, steps, quick_steps) in MODELS.items():
        n = quick_steps if args.quick else steps
        c.log(f"{model}: {n} steps, per-rank batch {batch}")
        res = c.interleave({"every": trial(model, 1, n), "never": trial(model, 0, n)}, args.repeats)
        assert {r["loss"] for r in res["every"]} == {r["loss"] for r in res["never"]}, "the check changed training"
        ratio = c.paired_ratio(res["every"], res["never"], "step_time_s")
        window = c.paired_ratio(res["every"], res["never"], "window_s")
        every_s, never_s = (c.median([r["window_s"] for r in res[k]]) for k in ("every", "never"))
        rows.append([model, never_s * 1e3, ratio, window, 1e6 * (every_s - never_s)])
    print(f"Machine: {c.machine()}; {args.repeats} rounds.\n")
    print(c.table(["model", "step ms (never)", "ratio step_time_s", "ratio median window", "extra µs/step"], rows))
    print(f"\nVerdict (median window, tiny): {c.verdict(rows[0][3], TARGET)}")


if __name__ == "__main__":
    main()
