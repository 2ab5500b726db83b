"""CPU seconds per step of scaletrain's TensorFlow loop against the hand-written loop, in one process.

tf_loop_overhead.py compares wall time, which on a shared machine swings by tens of percent with other people's
work. This companion counts CPU time instead (time.process_time: every thread of this process), which another
process's load barely moves. Each round runs, in this one process and back to back, scaletrain's real loop
(the training driver with the TF stepper under MirroredStrategy through a RunContext, exactly what a rank runs,
with its throughput meter reading process_time instead of perf_counter) and plain_tf_train.train (its windows timed with
process_time too). Same model, data, seed, optimizer and order: both must end on the same final loss.
Ratio = scaletrain / plain within a round, median over rounds; target <= 1.05.

    .venv/bin/python benchmarks/tf_loop_cpu.py [--repeats N] [--quick]
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import types

import _common as c
from loop_overhead import MODELS, NUM_SAMPLES, WINDOW, Model
from tf_loop_overhead import TARGET

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import plain_tf_train  # noqa: E402  (imports TensorFlow)
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from scaletrain.contract import config  # noqa: E402
from scaletrain.contract.env import detect  # noqa: E402
from scaletrain.driver import schema  # noqa: E402
from scaletrain.rank import metrics, strategies, worker  # noqa: E402
from scaletrain.rank.context import RunContext  # noqa: E402


def run_scaletrain(model: Model, steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-tfcpu-") as tmp:
        overrides = [
            "+strategy=mirrored",
            "workload=synthetic",
            f"output_dir={tmp}",
            f"checkpoint.dir={tmp}/ckpt",
            *c.scaletrain_loop_overrides(model, NUM_SAMPLES, steps, WINDOW),
        ]
        schema.register()
        with initialize_config_dir(config_dir=str(config.conf_dir()), version_base="1.3"):
            job = config.load(OmegaConf.to_container(compose("config", overrides=overrides), resolve=True))
        env = detect({})
        strategy = strategies.create(job.strategy, env)
        strategy.setup()
        ctx = RunContext(job, env, strategy)
        try:
            summary = worker.train(ctx)
        finally:
            ctx.close()
    return {"cpu_s_per_step": summary["step_time_s"], "final_loss": summary["final_loss"]}


def run_plain(model: Model, steps: int) -> dict[str, float]:
    args = plain_tf_train.parser().parse_args(c.plain_loop_args(model, NUM_SAMPLES, steps, WINDOW, os.devnull))
    result = plain_tf_train.train(args, clock=time.process_time)
    return {"cpu_s_per_step": result["step_time_s"], "final_loss": result["final_loss"]}


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=9, quick_repeats=3)
    metrics.time = types.SimpleNamespace(perf_counter=time.process_time)  # the meter now reads CPU seconds
    rows, verdicts = [], []
    for model in MODELS:
        steps = (model.quick_steps if args.quick else model.steps) // 2
        c.log(f"{model.name}: {model.describe()}, {steps} steps")
        res = c.interleave(
            {
                "scaletrain": lambda _, m=model, s=steps: run_scaletrain(m, s),
                "plain": lambda _, m=model, s=steps: run_plain(m, s),
            },
            args.repeats,
        )
        st, pl = res["scaletrain"], res["plain"]
        ratio = c.paired_ratio(st, pl, "cpu_s_per_step")
        same = all(math.isclose(a["final_loss"], b["final_loss"], rel_tol=1e-5) for a, b in zip(st, pl, strict=True))
        rows.append(
            [
                f"{model.name}: {model.describe()}, {steps} steps",
                1e3 * c.median([r["cpu_s_per_step"] for r in st]),
                1e3 * c.median([r["cpu_s_per_step"] for r in pl]),
                f"{ratio:.4f}",
                c.spread([a["cpu_s_per_step"] / b["cpu_s_per_step"] for a, b in zip(st, pl, strict=True)]),
                "yes" if same else "NO",
            ]
        )
        verdicts.append(f"{model.name}: CPU ratio {ratio:.4f}, target {c.verdict(ratio, TARGET)}")
    print(
        f"\nTensorFlow loop CPU time per step, 1 process, {args.repeats} interleaved rounds, medians; {c.machine()}\n"
    )
    headers = ["model", "scaletrain CPU ms/step", "plain CPU ms/step", "ratio", "ratio range", "same final loss"]
    print(c.table(headers, rows))
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
