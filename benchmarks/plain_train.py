"""The baseline of loop_overhead.py: a hand-written single-process PyTorch training loop.

Same arrays and model as scaletrain's synthetic workload (built by the same functions under the same seed),
the same optimizer, batch size and per-epoch shuffle (a seeded torch.randperm, then index-gathered batches,
as DistributedSampler does at world size 1). Timed as scaletrain times it: the first window of ``--window``
steps is left out (warm-up), the rest is timed with perf_counter (and with the process CPU clock), and each
window's mean step time is kept (scaletrain's metrics.jsonl has the same windows). Nothing else happens per
step: no loss bookkeeping, no logging. Writes {"step_time_s", "cpu_step_time_s", "window_step_times_s",
"final_loss", "steps"} as JSON to --out.

    python benchmarks/plain_train.py --steps 500 --window 10 --out result.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch
import torch.nn.functional as F

from scaletrain.workloads import synthetic, torch_models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-samples", type=int, default=8192)
    p.add_argument("--input-dim", type=int, default=256)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--window", type=int, default=10, help="steps per timing window (log_every_n_steps)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if not 0 < a.window < a.steps or a.steps % a.window:
        p.error("--steps must be a multiple of --window, and more than one window")

    sizes = ("num_samples", "input_dim", "width", "depth", "num_classes")
    cfg = synthetic.Config(**{k: getattr(a, k) for k in sizes})
    x_np, y_np = synthetic.data(cfg, a.seed)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    torch.manual_seed(a.seed)
    model = torch_models.mlp(a.input_dim, a.width, a.num_classes, depth=a.depth)
    optimizer = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    model.train()

    generator = torch.Generator()
    step, epoch, loss = 0, 0, None
    marks: list[float] = []  # perf_counter at the end of each window
    cpu_marks: list[float] = []  # process_time at the same instants
    while step < a.steps:
        generator.manual_seed(a.seed + epoch)  # DistributedSampler's order for this epoch
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(order), a.batch_size):
            batch = order[start : start + a.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            step += 1
            if step % a.window == 0:
                cpu_marks.append(time.process_time())
                marks.append(time.perf_counter())
            if step == a.steps:
                break
        epoch += 1

    # The first window is warm-up: timing starts at its end, as scaletrain's steady-state figures do.
    windows = [(end - start) / a.window for start, end in itertools.pairwise(marks)]
    result = {
        "step_time_s": (marks[-1] - marks[0]) / (a.steps - a.window),
        "cpu_step_time_s": (cpu_marks[-1] - cpu_marks[0]) / (a.steps - a.window),
        "window_step_times_s": windows,
        "final_loss": loss.item(),
        "steps": step,
    }
    with open(a.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
