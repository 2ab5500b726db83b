"""Ray Train's own TorchTrainer running scaletrain's synthetic workload: the baseline of ray_startup.py.

Connects to an existing Ray cluster (--address), trains the same MLP on the same arrays (workloads/synthetic.py) with
the same global batch, SGD momentum 0.9 lr 0.05 and per-epoch DistributedSampler shuffling, in a plain loop inside
``train_loop_per_worker`` (model wrapped by ``ray.train.torch.prepare_model``: DDP over gloo on CPU). Rank 0 writes
the wall-clock time of its first finished step and the steady step time (first window of --window steps left out).

    python benchmarks/ray_train_baseline.py --address HOST:PORT --workers 2 --steps 40 --out result.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def train_loop(config: dict) -> None:
    import torch
    import torch.nn.functional as F
    from ray import train
    from ray.train.torch import prepare_model
    from torch.utils.data import DistributedSampler

    from scaletrain.workloads import synthetic

    ctx = train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    task = synthetic.PLUGIN.build_torch(synthetic.Config(**config["workload"]), config["seed"])
    model = prepare_model(task.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = task.train
    sampler = DistributedSampler(x, num_replicas=world, rank=rank, shuffle=True, seed=config["seed"])
    batch = config["global_batch"] // world
    step, first_step_unix_s, window_start = 0, None, None
    while step < config["steps"]:
        sampler.set_epoch(step)
        indices = torch.tensor(list(sampler))
        for start in range(0, len(indices), batch):
            idx = indices[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
            step += 1
            if first_step_unix_s is None:
                first_step_unix_s = time.time()
            if step == config["window"]:
                window_start = time.perf_counter()
            if step >= config["steps"]:
                break
    steady = (time.perf_counter() - window_start) / (step - config["window"]) if window_start else None
    if rank == 0:
        with open(config["out"], "w") as f:
            json.dump({"first_step_unix_s": first_step_unix_s, "step_time_s": steady, "steps": step}, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--num-samples", type=int, default=4096)
    parser.add_argument("--input-dim", type=int, default=256)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.init(address=args.address, log_to_driver=False, logging_level="WARNING")
    workload = {"num_samples": args.num_samples, "input_dim": args.input_dim, "width": args.width, "depth": args.depth}
    config = {
        "workload": workload,
        "seed": args.seed,
        "global_batch": args.global_batch,
        "steps": args.steps,
        "window": args.window,
        "out": args.out,
    }
    with tempfile.TemporaryDirectory(prefix="bench-ray-train-") as storage:
        trainer = TorchTrainer(
            train_loop,
            train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=False, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(storage_path=storage, name="baseline"),
        )
        trainer.fit()
    ray.shutdown()


if __name__ == "__main__":
    main()
