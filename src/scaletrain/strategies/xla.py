"""PyTorch/XLA through PJRT: one process per host drives all of the host's devices with SPMD data parallelism.

The input batch is sharded over a device mesh and the parameters are replicated; XLA's partitioner inserts the
gradient all-reduce. This is what PyTorch/XLA recommends for TPU pods; its per-device-process mode
(``torch_xla.launch``) hung in its first all-reduce on the CPU device here, see docs/strategies.md "PyTorch/XLA".
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from scaletrain.common import hardware
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError
from scaletrain.strategies.plugin import Placement, StrategyPlugin
from scaletrain.strategies.xla_mesh import batch_mismatch, mesh_mismatch

DEVICES = ("auto", "TPU", "CPU", "CUDA")
INSTALL_HINT = "pip install 'scaletrain[xla]' (torch==2.9.0 with torch-xla==2.9.0)"


@dataclass
class Config:
    name: str = "xla"
    device: str = "auto"  # auto: $PJRT_DEVICE if set, else TPU when this host has TPU chips, else CPU
    num_devices: int | None = None  # CPU only: XLA CPU devices per process (CPU_NUM_DEVICES); null: as ddp's ranks
    mesh_shape: list[int] | None = None  # null: one data axis over every device; the batch is split over all axes

    def validate(self) -> None:
        canonical = {d.upper(): d for d in DEVICES}
        if str(self.device).upper() not in canonical:
            raise ConfigError(f"strategy.device='{self.device}' is not known; use one of: {', '.join(DEVICES)}.")
        self.device = canonical[str(self.device).upper()]
        if self.num_devices is not None and self.num_devices < 1:
            raise ConfigError(f"strategy.num_devices={self.num_devices} must be at least 1 (or null).")
        if self.num_devices is not None and self.device in ("TPU", "CUDA"):
            raise ConfigError(
                f"strategy.num_devices={self.num_devices} applies to XLA's CPU device only; on {self.device} "
                "every device of the host is used, so drop strategy.num_devices."
            )
        if self.mesh_shape is not None and (not self.mesh_shape or min(self.mesh_shape) < 1):
            raise ConfigError(f"strategy.mesh_shape={self.mesh_shape} must list positive sizes, such as [4] or [2, 2].")


def resolve_device(config: Config, environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The PJRT device to use and what chose it (named in error messages)."""
    if config.device != "auto":
        return config.device, f"strategy.device={config.device}"
    wanted = environ.get("PJRT_DEVICE", "").strip()
    if wanted:
        if wanted.upper() not in DEVICES[1:]:
            raise ConfigError(
                f"PJRT_DEVICE={wanted} is not a device the xla strategy runs on; set it to TPU, CPU or CUDA, "
                "or unset it."
            )
        return wanted.upper(), f"PJRT_DEVICE={wanted}"
    chips = hardware.tpu_chip_count()
    return ("TPU", f"{chips} TPU chip(s) found") if chips else ("CPU", "no TPU found")


def cpu_devices(config: Config) -> int:
    return config.num_devices or hardware.default_cpu_procs(hardware.cpu_count())


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else ()


def check_versions(version: Callable[[str], str] = metadata.version) -> None:
    """torch-xla is built against one torch release (ABI): compare installed versions without importing either."""
    try:
        xla, torch = version("torch-xla"), version("torch")
    except metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"+strategy=xla needs {exc.name or 'torch-xla'}, which is not installed; {INSTALL_HINT}."
        ) from None
    if _release(xla) != _release(torch):
        raise ConfigError(
            f"torch {torch} does not match torch-xla {xla}, which only works with torch "
            f"{'.'.join(map(str, _release(xla)))}; {INSTALL_HINT}."
        )


def _known_device_count(config: Config, placement: Placement, device: str) -> tuple[int, str] | None:
    if device == "CPU":
        return cpu_devices(config), f"strategy.num_devices={cpu_devices(config)}"
    if device == "CUDA":
        hosts = placement.nodes or 1  # a launcher that learns its hosts later: the worker checks the mesh then
        gpus = hardware.gpu_count() * hosts
        return gpus, f"{gpus} GPU(s) over {hosts} host(s)"
    return None


class XLA(StrategyPlugin):
    framework = "torch"
    Config = Config
    procs_per_node = 1  # SPMD: one process owns every device of its host
    procs_per_node_required = True  # a second process on the host could not reach the devices

    def preflight(self, config: Config, train: Any, placement: Placement, script: str | None = None) -> None:
        check_versions()
        device, chosen_by = resolve_device(config)
        if train.precision == "fp16":
            raise ConfigError(
                "train.precision=fp16 is not supported under xla (PyTorch/XLA trains mixed precision in bf16); use "
                "train.precision=bf16 or fp32."
            )
        fix_device = "unset PJRT_DEVICE" if chosen_by.startswith("PJRT_DEVICE") else "use strategy.device=CPU"
        if device == "TPU" and hardware.tpu_chip_count() == 0:
            raise ConfigError(
                f"{chosen_by} asks for a Cloud TPU but this host has none (no TPU PCI device or /dev/accel*); "
                f"run on a TPU VM, or {fix_device}."
            )
        if device == "CUDA" and hardware.gpu_count() == 0:
            raise ConfigError(f"{chosen_by} needs NVIDIA GPUs and none were found on this host; {fix_device}.")
        if device == "CPU" and (placement.nodes or 1) > 1:
            raise ConfigError(
                f"{placement.nodes_from}={placement.nodes} cannot be used with XLA's CPU device, which serves one "
                f"process only; run on one host ({placement.nodes_from}=1), or on TPU or CUDA devices."
            )
        known = _known_device_count(config, placement, device)
        if known is None:
            return  # TPU: the runtime counts its devices; the worker checks the mesh and the batch then
        count, where = known
        if config.mesh_shape is not None and math.prod(config.mesh_shape) != count:
            raise ConfigError(mesh_mismatch(config.mesh_shape, count, where))
        if script is None and train.global_batch_size % count:
            raise ConfigError(batch_mismatch(train.global_batch_size, count))

    def describe(self, config: Config, placement: Placement) -> str:
        device, chosen_by = resolve_device(config)
        count = _known_device_count(config, placement, device)
        devices = f"{count[0]} {device} device(s)" if count else f"every {device} device"
        return f"xla with SPMD over {devices} per process, one process per host ({chosen_by})"

    def worker_env(self, config: Config, env: ClusterEnv) -> dict[str, str]:
        device, _ = resolve_device(config)
        out = {"PJRT_DEVICE": device}
        if device == "CPU":
            out["CPU_NUM_DEVICES"] = str(cpu_devices(config))
        if device == "CUDA" and env.world_size > 1:
            # XLA's GPU client meets its peers at MASTER_ADDR:XLA_COORDINATOR_PORT; MASTER_PORT is gloo's.
            out["XLA_COORDINATOR_PORT"] = str(env.master_port + 1)
        return out

    def devices(self, config: Config, processes: int) -> int:
        """Its XLA devices: the CPU device's count, the host's GPUs, or its TPU chips, in every process."""
        device = resolve_device(config)[0]
        per_process = {"CPU": cpu_devices(config), "CUDA": hardware.gpu_count()}.get(device)
        return processes * (per_process or hardware.tpu_chip_count() or 1)

    def sweep_point(self, config: Config, world_size: int) -> tuple[Config, int]:
        """A sweep point of ``world_size`` XLA devices: one process with that many CPU devices.

        On TPU and CUDA the runtime takes every chip of the host, so a sweep there would need the chips split between
        processes (TPU_VISIBLE_CHIPS and its bounds), which scaletrain does not set up yet.
        """
        device, chosen_by = resolve_device(config)
        if device != "CPU":
            raise ConfigError(
                f"scaling sweeps with +strategy=xla run on XLA's CPU device only ({chosen_by} picked {device}, whose "
                "runtime takes every chip of the host); use strategy.device=CPU, or sweep launcher.nnodes over hosts."
            )
        if config.mesh_shape is not None and math.prod(config.mesh_shape) != world_size:
            raise ConfigError(
                f"strategy.mesh_shape={list(config.mesh_shape)} cannot hold every point of a scaling sweep; drop "
                "strategy.mesh_shape so that each point gets one data axis over its devices."
            )
        return dataclasses.replace(config, num_devices=world_size), 1


PLUGIN = XLA()
