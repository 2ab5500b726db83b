"""Per-step overhead of scaletrain's TensorFlow loop against a hand-written TensorFlow custom loop (1 process, CPU).

Each round runs, in separate subprocesses and back to back, the real CLI

    python -m scaletrain +strategy=mirrored workload=synthetic train.max_steps=N ...

(one process, MirroredStrategy over one CPU device; step_time_s from summary.json: steady state, the first log
window left out) and benchmarks/plain_tf_train.py (same arrays, Keras model, seed, SGD momentum 0.9 lr 0.05,
batch size and per-epoch order, a tf.function step and no distribution strategy; its first window left out
too), both with the same environment. Both must end on the same final loss, proof that they did the same work.
Ratio = scaletrain / plain within a round, median over rounds; target <= 1.03, so the PyTorch-vs-TensorFlow
head-to-head measures the frameworks and not scaletrain's wrappers.

    .venv/bin/python benchmarks/tf_loop_overhead.py [--repeats N] [--quick]
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import _common as c
from loop_overhead import MODELS, NUM_SAMPLES, WINDOW, Model

TARGET = 1.03  # issue 10: the TF stepper under the shared driver against a plain TF custom loop


def scaletrain_cmd(model: Model, steps: int, out_dir: str) -> list[str]:
    return [
        c.PYTHON,
        "-m",
        "scaletrain",
        "+strategy=mirrored",
        "workload=synthetic",
        f"hydra.run.dir={out_dir}",
        *c.scaletrain_loop_overrides(model, NUM_SAMPLES, steps, WINDOW),
    ]


def plain_cmd(model: Model, steps: int, out: str) -> list[str]:
    return [
        c.PYTHON,
        str(c.BENCH_DIR / "plain_tf_train.py"),
        *c.plain_loop_args(model, NUM_SAMPLES, steps, WINDOW, out),
    ]


def run_scaletrain(model: Model, steps: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-tfloop-") as tmp:
        c.run(scaletrain_cmd(model, steps, tmp), env)
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


def run_plain(model: Model, steps: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-tfplain-") as tmp:
        out = Path(tmp) / "result.json"
        c.run(plain_cmd(model, steps, str(out)), env)
        result = c.read_json(out)
    return {
        "step_time_s": result["step_time_s"],
        "window_median_s": c.median(result["window_step_times_s"]),
        "final_loss": result["final_loss"],
    }


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=7, quick_repeats=3)
    env = c.bench_env(os.cpu_count() or 1)  # one process: it may use every core, as TensorFlow does
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    rows, verdicts = [], []
    for model in MODELS:
        steps = model.quick_steps if args.quick else model.steps
        c.log(f"{model.name}: {model.describe()}, {steps} steps")
        res = c.interleave(
            {
                "scaletrain": lambda _, m=model, s=steps: run_scaletrain(m, s, env),
                "plain": lambda _, m=model, s=steps: run_plain(m, s, env),
            },
            args.repeats,
        )
        st, pl = res["scaletrain"], res["plain"]
        ratio = c.paired_ratio(st, pl, "step_time_s")
        window_ratio = c.paired_ratio(st, pl, "window_median_s")
        same_loss = all(
            math.isclose(a["final_loss"], b["final_loss"], rel_tol=1e-5) for a, b in zip(st, pl, strict=True)
        )
        rows.append(
            [
                f"{model.name}: {model.describe()}, {steps} steps",
                1e3 * c.median([r["step_time_s"] for r in st]),
                1e3 * c.median([r["step_time_s"] for r in pl]),
                f"{ratio:.4f}",
                f"{window_ratio:.4f}",
                "yes" if same_loss else "NO",
            ]
        )
        verdicts.append(
            f"{model.name}: ratio {ratio:.4f} (per-window {window_ratio:.4f}), target {c.verdict(ratio, TARGET)}"
        )
    print(
        f"\nTensorFlow loop overhead, 1 process, {args.repeats} interleaved rounds, medians; {c.machine()}, "
        f"tensorflow {version('tensorflow')}\n"
    )
    headers = ["model", "scaletrain ms/step", "plain ms/step", "ratio", "per-window ratio", "same final loss"]
    print(c.table(headers, rows))
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
