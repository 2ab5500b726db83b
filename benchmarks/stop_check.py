"""Cost of the stop check: ranks agreeing whether a stop was requested (SLURM's warning signal), per step.

Two DDP ranks (scaletrain's DDPStrategy, gloo, CPU) train the synthetic workload's MLP in blocks of steps. Each
round runs one block per cadence, in alternating order (A B C, then C B A), in the same two processes, so load
from other processes on a shared machine hits all cadences alike:

    never             no check: the loop before this feature (a 1-element loss all-reduce every 10th step)
    log step          the default (checkpoint.stop_check_every_n_steps=null): the stop votes ride along in the
                      loss all-reduce of every 10th step (2 elements instead of 1), no collective of their own
    every step        checkpoint.stop_check_every_n_steps=1: the same, plus a 1-element all-reduce after each
                      of the other steps

Figure: time per step over the "never" block of the same round, median over rounds; and the extra time per step.

    .venv/bin/python benchmarks/stop_check.py [--repeats N] [--quick]
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import _common as c

TARGET = 1.02  # the default cadence: at most 2% slower per step, even for a tiny model
LOG_EVERY = 10
CADENCES = {"never": None, "log step (default)": LOG_EVERY, "every step": 1}
MODELS = {  # name -> (input, width, depth, per-rank batch, steps per block)
    "tiny": (32, 32, 1, 16, 100),
    "medium": (256, 512, 4, 128, 20),
}


def _rank(rank: int, port: int, model: str, rounds: int, out: str) -> None:
    import torch

    from scaletrain.contract.env import ClusterEnv
    from scaletrain.rank import strategies as rank_strategies
    from scaletrain.strategies import ddp

    torch.set_num_threads(1)
    env = ClusterEnv(rank, rank, 2, 2, 0, 1, "127.0.0.1", port, "local")
    strategy = rank_strategies.create(ddp.Config(backend="gloo"), env)
    strategy.setup()
    inputs, width, depth, batch, steps = MODELS[model]
    torch.manual_seed(rank)
    layers = [torch.nn.Linear(inputs, width), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
    wrapped = strategy.wrap_model(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, inputs), torch.randint(0, 10, (batch,))
    times: dict[str, list[float]] = {name: [] for name in CADENCES}
    for r in range(rounds + 1):  # round 0 warms up and is dropped
        for name in list(CADENCES) if r % 2 else list(reversed(CADENCES)):
            every = CADENCES[name]
            strategy.barrier()
            started = time.perf_counter()
            for step in range(1, steps + 1):
                optimizer.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(wrapped(x), y)
                loss.backward()
                optimizer.step()
                if step % LOG_EVERY == 0:  # what the loop's log step all-reduces
                    packed = [loss.detach().reshape(())] + ([torch.tensor(0.0)] if every else [])
                    strategy.all_reduce_sum(torch.stack(packed).float()).tolist()
                elif every and step % every == 0:
                    strategy.any_rank(False)
            if r:
                times[name].append((time.perf_counter() - started) / steps)
    strategy.barrier()
    strategy.teardown()
    if rank == 0:
        Path(out).write_text(json.dumps(times))


def measure(model: str, rounds: int) -> dict[str, list[float]]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times.json")
        mp.spawn(_rank, args=(c.free_port(), model, rounds, out), nprocs=2, join=True)
        return json.loads(Path(out).read_text())


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=60, quick_repeats=15)
    rows = []
    for model, (inputs, width, depth, batch, steps) in MODELS.items():
        c.log(f"{model}: MLP {inputs}-{width}x{depth}-10, per-rank batch {batch}, {steps} steps per block")
        times = measure(model, args.repeats)
        never = times["never"]
        for name in ("log step (default)", "every step"):
            ratio = c.median([t / n for t, n in zip(times[name], never, strict=True)])
            extra_us = 1e6 * c.median([t - n for t, n in zip(times[name], never, strict=True)])
            rows.append([model, name, 1e3 * c.median(never), ratio, extra_us])
    print(f"Machine: {c.machine()}; 2 ranks, gloo; {args.repeats} interleaved rounds.\n")
    print(c.table(["model", "stop check", "ms/step (never)", "ratio (median)", "extra µs/step (median)"], rows))
    print(f"\nDefault cadence, tiny model: {c.verdict(rows[0][3], TARGET)}")


if __name__ == "__main__":
    main()
