"""The baseline of startup.py: a hand-written DDP training script, run under torchrun.

    torchrun --nproc-per-node 2 benchmarks/plain_ddp_train.py --steps 5 --out first_step.json

Joins the group from torchrun's environment (gloo), builds the same arrays and model as scaletrain's synthetic
workload (the same functions, the same seed), wraps the model in DistributedDataParallel and trains with SGD,
each rank on its share of a per-epoch seeded permutation. Rank 0 writes {"first_step_unix_s", "final_loss",
"steps"} as JSON to --out: first_step_unix_s is the wall clock when its first optimizer step finished, the
moment scaletrain records as first_step_unix_s in summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from scaletrain.workloads import synthetic, torch_models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-samples", type=int, default=8192)
    p.add_argument("--input-dim", type=int, default=256)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--global-batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from torchrun
    rank, world_size = dist.get_rank(), dist.get_world_size()
    sizes = ("num_samples", "input_dim", "width", "depth", "num_classes")
    x_np, y_np = synthetic.data(synthetic.Config(**{k: getattr(a, k) for k in sizes}), a.seed)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    torch.manual_seed(a.seed)
    model = DistributedDataParallel(torch_models.mlp(a.input_dim, a.width, a.num_classes, depth=a.depth))
    optimizer = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    batch_size = a.global_batch_size // world_size

    generator = torch.Generator()
    step, epoch, loss, first_step_unix_s = 0, 0, None, None
    while step < a.steps:
        generator.manual_seed(a.seed + epoch)
        mine = torch.randperm(len(x), generator=generator)[rank::world_size]
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            step += 1
            if first_step_unix_s is None:
                first_step_unix_s = time.time()
            if step == a.steps:
                break
        epoch += 1

    if rank == 0:
        result = {"first_step_unix_s": first_step_unix_s, "final_loss": loss.item(), "steps": step}
        tmp = f"{a.out}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.replace(tmp, a.out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
