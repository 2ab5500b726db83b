"""The ddp strategy in a rank: torch.distributed's process group (gloo or NCCL) and DistributedDataParallel,
with every gradient bucket's all-reduce timed. Its settings and driver-side hooks are strategies/ddp.py."""

from __future__ import annotations

import datetime
from typing import Any

from scaletrain.common import netif
from scaletrain.contract.env import ClusterEnv
from scaletrain.rank.metrics import CommTimer
from scaletrain.rank.strategies.base import TorchStrategy
from scaletrain.strategies.ddp import Config, resolve_backend


class DDPStrategy(TorchStrategy):
    measures_comm = True  # a DDP comm hook times every gradient bucket's all-reduce

    def __init__(self, config: Config, env: ClusterEnv) -> None:
        super().__init__(config, env)
        import torch  # lazily: strategy modules are imported by the driver for validation

        self.backend = resolve_backend(config.backend, torch.cuda.device_count())
        self.comm_timer = CommTimer()
        if self.backend == "nccl":
            self._device = torch.device("cuda", env.local_rank % max(1, torch.cuda.device_count()))
        else:
            self._device = torch.device("cpu")

    @property
    def device(self) -> Any:
        return self._device

    def setup(self) -> None:
        import torch
        import torch.distributed as dist

        if self._device.type == "cuda":
            torch.cuda.set_device(self._device)
        # gloo/NCCL talk over the interface that reaches the master, not the one this host's name resolves to
        netif.apply_for(self.env)
        dist.init_process_group(
            backend=self.backend,
            init_method=f"tcp://{self.env.master_addr}:{self.env.master_port}",
            rank=self.env.rank,
            world_size=self.env.world_size,
            timeout=datetime.timedelta(seconds=self.config.timeout_s),
            device_id=self._device if self._device.type == "cuda" else None,
        )

    def teardown(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

    def wrap_model(self, model: Any) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        if self.env.world_size == 1:  # nothing to average: skip DDP's hooks and bucketing
            return model
        device_ids = [self._device] if self._device.type == "cuda" else None
        ddp = DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=self.config.find_unused_parameters
        )
        ddp.register_comm_hook(self.comm_timer, _timed_allreduce)
        return ddp

    def take_comm_times(self) -> tuple[float, float]:
        return self.comm_timer.take()

    def all_reduce_sum(self, tensor: Any) -> Any:
        import torch.distributed as dist

        if self.env.world_size == 1:  # the sum over one rank: skip gloo's ~40 µs round trip
            return tensor
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        import torch.distributed as dist

        if self._device.type == "cuda":
            dist.barrier(device_ids=[self._device.index])
        else:
            dist.barrier()


def _timed_allreduce(timer, bucket):  # unannotated: DDP rejects string annotations on comm hooks
    """DDP's own averaging all-reduce, with its launch and completion times recorded (no extra sync)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    started = timer.launched()

    def finished(fut: Any) -> Any:
        timer.finished(started)
        return fut.value()

    return allreduce_hook(None, bucket).then(finished)


RUNTIME = DDPStrategy
