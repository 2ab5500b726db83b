"""Mixed bf16 against fp32, per framework, on this machine's CPU: the step time of the same training in both.

Each round runs, in separate subprocesses and back to back, the real CLI on one rank

    python -m scaletrain +strategy=ddp|mirrored workload=synthetic train.precision=fp32|bf16 train.max_steps=N ...

(the medium MLP of loop_overhead.py: 256-512x4-10, batch 256, SGD), and reads step_time_s from summary.json (steady
state: the first log window left out). The two precisions alternate A B / B A; ratio = bf16 / fp32 within a round,
median over rounds. Below 1: bf16 is faster here. No target: the figure says what bf16 buys on this CPU (AVX-512
BF16 kernels, if the CPU has them) before a GPU says what it buys there. Also reported: the final loss of each, so a
reader sees bf16 trained the same problem.

    .venv/bin/python benchmarks/precision.py [--repeats N] [--quick]
"""

from __future__ import annotations

import _common as c
from loop_overhead import MODELS, NUM_SAMPLES, WINDOW

STRATEGIES = {"ddp (PyTorch autocast)": "+strategy=ddp", "mirrored (Keras mixed policy)": "+strategy=mirrored"}
PRECISIONS = ("fp32", "bf16")


def trial(strategy: str, precision: str, steps: int, env: dict[str, str]):
    model = next(m for m in MODELS if m.name == "medium")

    def run(_round: int) -> dict[str, float]:
        loop = c.scaletrain_loop_overrides(model, NUM_SAMPLES, steps, WINDOW)
        overrides = [strategy, f"train.precision={precision}", *loop]
        summary = c.one_rank_summary(overrides, env)
        return {"step_time_s": summary["step_time_s"], "final_loss": summary["final_loss"]}

    return run


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=5, quick_repeats=2)
    steps = 100 if args.quick else 300
    env = c.bench_env(omp_threads=1)
    rows = []
    for name, strategy in STRATEGIES.items():
        c.log(f"{name}: {args.repeats} rounds of fp32 and bf16, {steps} steps each")
        trials = {p: trial(strategy, p, steps, env) for p in PRECISIONS}
        figures = c.interleave(trials, args.repeats, warmup=True)
        rows.append(c.step_and_loss_row(name, figures["fp32"], figures["bf16"]))
    print(f"\n{c.machine()}; medium MLP 256-512x4-10, batch 256, one rank, OMP_NUM_THREADS=1, {steps} steps\n")
    headers = ["strategy", "fp32 ms/step", "bf16 ms/step", "bf16 / fp32", "range (rounds)", "fp32 loss", "bf16 loss"]
    print(c.table(headers, rows))


if __name__ == "__main__":
    main()
