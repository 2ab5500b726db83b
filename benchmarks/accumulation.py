"""Gradient accumulation's overhead, per framework: one step of 4B samples computed as 4 micro-batches of B against
the same step computed at once, on one rank of this machine's CPU.

Each round runs, in separate subprocesses and back to back, the real CLI on one rank

    python -m scaletrain +strategy=ddp|mirrored workload=synthetic train.global_batch_size=1024 \\
        [train.micro_batch_size=256] train.max_steps=N ...

(the medium MLP of loop_overhead.py: 256-512x4-10, SGD), and reads step_time_s from summary.json (steady state: the
first log window left out). The two alternate A B / B A; ratio = accumulated / at once within a round (the same
samples per step, so it is the ratio of time per sample), median over rounds. Target (issue 22): <= 1.03. Also
reported: the final loss of each, which should agree to float tolerance (the same gradients, summed in another order).

    .venv/bin/python benchmarks/accumulation.py [--repeats N] [--quick]
"""

from __future__ import annotations

import dataclasses

import _common as c
from loop_overhead import MODELS, NUM_SAMPLES, WINDOW

STRATEGIES = {"ddp (PyTorch, no_sync)": "+strategy=ddp", "mirrored (Keras, while loop)": "+strategy=mirrored"}
MICRO_STEPS = 4


def trial(strategy: str, micro: int | None, steps: int, env: dict[str, str]):
    base = next(m for m in MODELS if m.name == "medium")
    model = dataclasses.replace(base, batch=base.batch * MICRO_STEPS)  # the step's samples: 4B
    micro_setting = [f"train.micro_batch_size={micro}"] if micro else []

    def run(_round: int) -> dict[str, float]:
        overrides = [strategy, *c.scaletrain_loop_overrides(model, NUM_SAMPLES, steps, WINDOW), *micro_setting]
        summary = c.one_rank_summary(overrides, env)
        assert summary["accumulation_steps"] == (MICRO_STEPS if micro else 1), summary
        return {"step_time_s": summary["step_time_s"], "final_loss": summary["final_loss"]}

    return run


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=5, quick_repeats=2)
    steps = 40 if args.quick else 120
    env = c.bench_env(omp_threads=1)
    micro = next(m for m in MODELS if m.name == "medium").batch
    rows = []
    for name, strategy in STRATEGIES.items():
        c.log(f"{name}: {args.repeats} rounds of 1 x {micro * MICRO_STEPS} and {MICRO_STEPS} x {micro}, {steps} steps")
        trials = {"once": trial(strategy, None, steps, env), "accumulated": trial(strategy, micro, steps, env)}
        figures = c.interleave(trials, args.repeats, warmup=True)
        rows.append(c.step_and_loss_row(name, figures["once"], figures["accumulated"]))
    print(f"\n{c.machine()}; medium MLP 256-512x4-10, {MICRO_STEPS * micro} samples per step, one rank, "
          f"OMP_NUM_THREADS=1, {steps} steps\n")  # fmt: skip
    headers = ["strategy", "at once ms/step", f"{MICRO_STEPS} x {micro} ms/step", "accumulated / at once",
               "range (rounds)", "loss at once", "loss accumulated"]  # fmt: skip
    print(c.table(headers, rows))


if __name__ == "__main__":
    main()
