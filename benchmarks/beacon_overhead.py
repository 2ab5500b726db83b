"""What the progress beacons cost: the same scaletrain run with the hang watchdog on (beacons published by every
rank) and off (watchdog.enabled=false), interleaved, 1 rank on CPU; target: at most 0.5 % of the step time.

    .venv/bin/python benchmarks/beacon_overhead.py [--repeats N] [--quick]

Ratio = on / off within a round, median over rounds, for the medium and the small model of loop_overhead.py.
"""

from __future__ import annotations

import math

import _common as c
from loop_overhead import CLOCKS, MODELS, WINDOW, run_scaletrain

TARGET = 1.005


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=7, quick_repeats=2)
    env = c.bench_env(1)
    rows, verdicts = [], []
    for model in MODELS:
        steps = model.quick_steps if args.quick else model.steps
        c.log(f"{model.name}: {model.describe()}, {steps} steps")
        res = c.interleave(
            {
                "beacons": lambda _, m=model, s=steps: run_scaletrain(m, s, WINDOW, env),
                "no beacons": lambda _, m=model, s=steps: run_scaletrain(
                    m, s, WINDOW, env, ("watchdog.enabled=false",)
                ),
            },
            args.repeats,
        )
        on, off = res["beacons"], res["no beacons"]
        same = all(math.isclose(a["final_loss"], b["final_loss"], rel_tol=1e-6) for a, b in zip(on, off, strict=True))
        for key, label in CLOCKS:
            ratio = c.paired_ratio(on, off, key)
            spread = c.spread([a[key] / b[key] for a, b in zip(on, off, strict=True)])
            rows.append([model.name, label, 1e3 * c.median([r[key] for r in on]), 1e3 * c.median([r[key] for r in off]),
                         f"{ratio:.4f}", spread])  # fmt: skip
        headline = c.paired_ratio(on, off, "step_time_s")
        verdicts.append(f"{model.name}: {headline:.4f}, target {c.verdict(headline, TARGET)}; same loss: {same}")
    print(f"\nbeacon overhead, 1 rank, {args.repeats} interleaved rounds, medians; {c.machine()}\n")
    print(c.table(["model", "clock", "beacons ms/step", "no beacons ms/step", "ratio", "ratio min–max"], rows))
    print("\n" + "\n".join(verdicts))


if __name__ == "__main__":
    main()
