"""The xla strategy on a worker: PJRT runtime in SPMD mode, a device mesh, sharded input, lazy graphs cut per step.

Imported by worker processes only (it imports torch; torch_xla is imported in ``setup``, after the launcher has
set PJRT_DEVICE and CPU_NUM_DEVICES).
"""

from __future__ import annotations

import datetime
import math
import os
from typing import Any, BinaryIO

import torch

from scaletrain.common import netif
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError
from scaletrain.rank.strategies.base import TorchStrategy
from scaletrain.strategies.xla_mesh import batch_mismatch, mesh_mismatch

GLOO_TIMEOUT_S = 300.0


class XLAStrategy(TorchStrategy):
    """SPMD data parallelism: this process feeds its share of the global batch to all of its host's devices."""

    static_shapes = True

    def __init__(self, config: Any, env: ClusterEnv) -> None:  # config: strategies/xla.py's Config
        super().__init__(config, env)
        self.mesh: Any = None  # torch_xla.distributed.spmd.Mesh, after setup
        self.num_devices = 0  # devices in the mesh, over every host
        self._device: Any = None
        self._specs: dict[int, Any] = {}  # tensor rank -> ShardingSpec splitting dim 0 over the mesh
        self._batch_axes: Any = None
        self._group = False  # a gloo group across hosts, for the loop's small host-side sums and barriers

    @property
    def device(self) -> Any:
        if self._device is None:
            raise RuntimeError("XLAStrategy.setup() must run before the device is used")
        return self._device

    def setup(self) -> None:
        import numpy as np
        import torch_xla
        import torch_xla.distributed.spmd as xs
        import torch_xla.runtime as xr

        if os.environ.get("PJRT_DEVICE") == "CPU" and self.env.num_nodes > 1:
            raise ConfigError(
                f"{self.env.num_nodes} hosts cannot share XLA's CPU device, which serves one process only; "
                "run on one host, or on TPU or CUDA devices."
            )
        xr.use_spmd()
        if xr.process_count() != self.env.world_size:
            raise ConfigError(
                f"the XLA runtime sees {xr.process_count()} host process(es) but the launcher started "
                f"{self.env.world_size}; start one process on every host of the slice (launcher.nnodes)."
            )
        self.num_devices = xr.global_runtime_device_count()
        self.devices_per_process = xr.addressable_runtime_device_count()
        shape = tuple(self.config.mesh_shape or (self.num_devices,))
        if math.prod(shape) != self.num_devices:
            where = f"the runtime found {self.num_devices} over {self.env.world_size} host(s)"
            raise ConfigError(mesh_mismatch(list(shape), self.num_devices, where))
        names = ("data",) if len(shape) == 1 else tuple(f"data{i}" for i in range(len(shape)))
        self.mesh = xs.Mesh(np.arange(self.num_devices), shape, names)
        self._batch_axes = names[0] if len(names) == 1 else names  # the batch is split over every axis
        self._device = torch_xla.device()
        if self.env.world_size > 1:
            import torch.distributed as dist

            # gloo talks over the interface that reaches the master, not the one this host's name resolves to
            netif.apply_for(self.env)
            dist.init_process_group(
                "gloo",
                init_method=f"tcp://{self.env.master_addr}:{self.env.master_port}",
                rank=self.env.rank,
                world_size=self.env.world_size,
                timeout=datetime.timedelta(seconds=GLOO_TIMEOUT_S),
            )
            self._group = True

    def teardown(self) -> None:
        if self._group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._group = False

    def wrap_model(self, model: Any) -> Any:
        return model  # parameters stay replicated; the sharded input makes XLA all-reduce the gradients

    def prepare_batch(self, *tensors: Any) -> tuple[Any, ...]:
        """CPU tensors straight into device tensors split along dim 0 over the mesh (no replicated copy first).

        With several hosts each passes its own part of the global batch (``minibatch``), as MpDeviceLoader does.
        """
        import torch_xla.core.xla_model as xm

        out = []
        for t in tensors:
            if t.dim() == 0:
                out.append(t.to(self._device))
                continue
            if t.shape[0] % self.devices_per_process:
                batch = t.shape[0] * self.env.world_size
                raise ConfigError(batch_mismatch(batch, self.num_devices))
            out.extend(xm.send_cpu_data_to_device(t, self._device, self._spec(t.dim())))
        return tuple(out)

    def _spec(self, rank: int) -> Any:
        if rank not in self._specs:
            import torch_xla.distributed.spmd as xs

            partition = (self._batch_axes,) + (None,) * (rank - 1)
            self._specs[rank] = xs.ShardingSpec(self.mesh, partition, minibatch=self.env.world_size > 1)
        return self._specs[rank]

    def step_end(self) -> None:
        import torch_xla

        torch_xla.sync()  # cut the traced graph here: every step is the same graph, compiled once

    def compile_stats(self) -> dict[str, float]:
        import torch_xla.debug.metrics as met

        data = met.metric_data("CompileTime")  # (count, total ns, samples); a counter read, no device sync
        count, total_ns = (data[0], data[1]) if data else (0, 0.0)
        return {"compiles": count, "compile_time_s": total_ns / 1e9}

    def all_reduce_sum(self, tensor: Any) -> Any:
        """Sum over host processes. Values computed on a sharded batch are already global on every host."""
        if not self._group:
            return tensor
        import torch.distributed as dist

        host = tensor.detach().cpu()
        dist.all_reduce(host, op=dist.ReduceOp.SUM)
        tensor.copy_(host)
        return tensor

    def allreduce_time_s(self, nbytes: int) -> float:
        """One all-reduce of ``nbytes`` over every device of the mesh, as XLA runs the gradients' own: a tensor
        split by rows over the mesh, summed over the rows into a replicated result."""
        import time

        import torch_xla
        import torch_xla.core.xla_model as xm
        import torch_xla.distributed.spmd as xs

        values = max(1, nbytes // 4)
        rows = torch.ones(self.num_devices, values, device=self._device)
        xs.mark_sharding(rows, self.mesh, (self._batch_axes, None))
        torch_xla.sync()
        xm.wait_device_ops()
        self.barrier()
        started = time.perf_counter()
        summed = rows.sum(dim=0)
        torch_xla.sync()
        xm.wait_device_ops()
        elapsed = time.perf_counter() - started
        del summed
        return elapsed

    def barrier(self) -> None:
        if self._group:
            import torch.distributed as dist

            dist.barrier()

    def save_state(self, state: dict[str, Any], f: BinaryIO) -> None:
        super().save_state(to_cpu(state), f)  # as xm.save: device tensors are written as CPU tensors


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor inside dicts, lists and tuples copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


RUNTIME = XLAStrategy
