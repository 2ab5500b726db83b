"""Which of scaletrain's per-step pieces cost time on a tiny model: the plain PyTorch loop with them switched in.

    .venv/bin/python benchmarks/ablate_loop.py            # the plain loop
    .venv/bin/python benchmarks/ablate_loop.py prep,wl    # plus prepare_batch's .to() and the window loss sum

Pieces (comma-separated): opt (scaletrain's build_optimizer), sharded (ShardedBatches' epoch order),
prep (the strategy's prepare_batch before the device check), prep_now (prepare_batch as it is: tensors already on
the device pass through), wl (window_loss += loss.detach()), meter (ThroughputMeter.add_step).
Prints µs per step over the last 3 900 of 4 000 steps; run each variant several times, interleaved, and compare
medians (see benchmarks/history/2026-12-RESULTS-history.md, section "1. Loop overhead"). Small model: MLP
32-32x1-10, batch 32, OMP_NUM_THREADS=1 recommended.
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn.functional as F

from scaletrain.contract.config import TrainConfig
from scaletrain.rank.loops.torch_data import ShardedBatches
from scaletrain.rank.loops.torch_stepper import build_optimizer
from scaletrain.rank.metrics import ThroughputMeter
from scaletrain.workloads import synthetic

STEPS, WARMUP, BATCH = 4000, 100, 32


def main() -> None:
    pieces = set(sys.argv[1].split(",")) if len(sys.argv) > 1 and sys.argv[1] else set()
    torch.set_num_threads(1)
    cfg = synthetic.Config(num_samples=8192, input_dim=32, width=32, depth=1, num_classes=10)
    task = synthetic.PLUGIN.build_torch(cfg, 0)
    (x, y), model, cpu = task.train, task.model, torch.device("cpu")
    if "opt" in pieces:
        optimizer = build_optimizer(TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9), model.parameters())
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = ShardedBatches(x, y, BATCH, 0, 1, 0)
    meter = ThroughputMeter(1)
    window_loss = torch.zeros(())
    step, epoch, started = 0, 0, 0.0
    while step < STEPS:
        if "sharded" in pieces:
            epoch_batches = batches.epoch(epoch)
        else:
            generator = torch.Generator()
            generator.manual_seed(epoch)
            order = torch.randperm(len(x), generator=generator)
            epoch_batches = ((x[order[s : s + BATCH]], y[order[s : s + BATCH]]) for s in range(0, len(order), BATCH))
        model.train()
        while step < STEPS:
            fetch_started = time.perf_counter()
            batch = next(epoch_batches, None)
            if batch is None:
                break
            if "prep" in pieces:
                xb, yb = tuple(t.to(cpu, non_blocking=True) for t in batch)
            elif "prep_now" in pieces:
                xb, yb = tuple(t if t.device == cpu else t.to(cpu, non_blocking=True) for t in batch)
            else:
                xb, yb = batch
            data_s = time.perf_counter() - fetch_started
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            step += 1
            if "wl" in pieces:
                window_loss += loss.detach()
            if "meter" in pieces:
                meter.add_step(BATCH, data_s, 0.0, 0.0)
            if step == WARMUP:
                started = time.perf_counter()
        epoch += 1
    us_per_step = 1e6 * (time.perf_counter() - started) / (STEPS - WARMUP)
    print(json.dumps({"pieces": sorted(pieces), "us_per_step": round(us_per_step, 1)}))


if __name__ == "__main__":
    main()
