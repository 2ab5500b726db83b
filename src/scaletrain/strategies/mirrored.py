"""TensorFlow MirroredStrategy: one process per host over its devices; MultiWorkerMirroredStrategy across processes.

One process (the default: one per host) mirrors the model over that host's GPUs, or over ``cpu_devices`` logical
CPU devices on a CPU-only host. A job of several processes (several hosts, or launcher.nproc_per_node > 1) uses
MultiWorkerMirroredStrategy, with each rank's TF_CONFIG written by scaletrain from its ClusterEnv.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from scaletrain.common import hardware
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError
from scaletrain.rank import precision
from scaletrain.strategies import tf_config
from scaletrain.strategies.plugin import Placement, StrategyPlugin

COMMUNICATIONS = ("auto", "ring", "nccl")


@dataclass
class Config:
    name: str = "mirrored"
    gpus: Any = "auto"  # GPUs per process: auto = every GPU it sees, 0 = the CPU, N = exactly N
    cpu_devices: int = 1  # without GPUs, one process: split the CPU into N logical devices (N replicas)
    communication: str = "auto"  # between processes: auto | ring | nccl
    timeout_s: float = 300.0  # how long a collective waits for the other processes

    def validate(self) -> None:
        g = self.gpus
        if g != "auto" and (isinstance(g, bool) or not isinstance(g, int) or g < 0):
            raise ConfigError(f"strategy.gpus={g!r} must be 'auto' or a whole number of 0 or more.")
        if self.cpu_devices < 1:
            raise ConfigError(f"strategy.cpu_devices={self.cpu_devices} must be at least 1.")
        if self.communication not in COMMUNICATIONS:
            raise ConfigError(
                f"strategy.communication='{self.communication}' is not known; use one of: {', '.join(COMMUNICATIONS)}."
            )
        if self.timeout_s <= 0:
            raise ConfigError(f"strategy.timeout_s={self.timeout_s} must be positive.")


def gpus_per_process(config: Config, gpus_on_host: int, procs_on_host: int = 1) -> int:
    if config.gpus == "auto":
        return gpus_on_host // max(1, procs_on_host)
    return config.gpus


def devices_per_process(config: Config, gpus_on_host: int, procs_on_host: int = 1) -> tuple[int, str]:
    """How many devices one process mirrors over, and their kind ("GPU" or "CPU")."""
    gpus = gpus_per_process(config, gpus_on_host, procs_on_host)
    return (gpus, "GPU") if gpus else (config.cpu_devices, "CPU")


def handed_in_tf_config(environ=os.environ) -> tf_config.TFCluster | None:
    """A TF_CONFIG the user exported before starting scaletrain: validated; its worker list is then used."""
    raw = environ.get("TF_CONFIG")
    return tf_config.parse(raw, "TF_CONFIG (from your environment)") if raw else None


def _size_mismatch(handed_in: tf_config.TFCluster, world_size: int) -> ConfigError:
    return ConfigError(
        f"TF_CONFIG (from your environment) lists {len(handed_in.workers)} process(es) but the job has "
        f"{world_size} rank(s); list one worker per rank, or unset TF_CONFIG and let scaletrain write it."
    )


class Mirrored(StrategyPlugin):
    framework = "tensorflow"
    Config = Config

    @property
    def worker_addresses(self) -> bool:
        """TF_CONFIG lists every worker: launchers find every rank's address first, unless you exported a
        TF_CONFIG of your own, which names them itself."""
        return handed_in_tf_config() is None

    procs_per_node = 1  # MirroredStrategy drives all of the host's devices from one process

    def preflight(self, config: Config, train: Any, placement: Placement, script: str | None = None) -> None:
        if importlib.util.find_spec("tensorflow") is None:
            raise ConfigError(
                "+strategy=mirrored needs TensorFlow, which is not installed; pip install 'scaletrain[tf]'."
            )
        gpus, cores = hardware.gpu_count(), hardware.cpu_count()
        if config.gpus != "auto" and config.gpus > gpus:
            raise ConfigError(
                f"strategy.gpus={config.gpus} asks MirroredStrategy for {config.gpus} GPU(s) but this host has {gpus}; "
                f"use strategy.gpus=auto (or at most {gpus})"
                + (", or strategy.cpu_devices=N to split the CPU into N devices." if not gpus else ".")
            )
        if gpus_per_process(config, gpus) == 0:
            if config.cpu_devices > cores:
                raise ConfigError(
                    f"strategy.cpu_devices={config.cpu_devices} asks MirroredStrategy for {config.cpu_devices} CPU "
                    f"devices but this host has {cores} core(s); use strategy.cpu_devices={cores} or fewer."
                )
            if config.communication == "nccl":
                raise ConfigError("strategy.communication=nccl needs GPUs and this job uses none; use auto or ring.")
        precision.check(train.precision, "mirrored", "CUDA" if gpus_per_process(config, gpus) else "CPU")
        handed_in_tf_config()  # a TF_CONFIG of your own is checked before anything starts

    def describe(self, config: Config, placement: Placement) -> str:
        count, kind = devices_per_process(config, hardware.gpu_count())
        found = f"{hardware.gpu_count()} GPU(s) found" if hardware.gpu_count() else "no GPU found"
        return f"mirrored: TensorFlow MirroredStrategy over {count} {kind} device(s) per process ({found})"

    def worker_env(self, config: Config, env: ClusterEnv) -> dict[str, str]:
        """TF_CONFIG for ranks of a multi-process job, so MultiWorkerMirroredStrategy (and user scripts) find peers."""
        handed_in = handed_in_tf_config()
        if handed_in is not None:
            if len(handed_in.workers) != env.world_size:
                raise _size_mismatch(handed_in, env.world_size)
            return {"TF_CONFIG": tf_config.for_rank(env, handed_in.workers).to_json()}
        if env.world_size == 1:
            return {}
        return {"TF_CONFIG": tf_config.for_rank(env).to_json()}

    def replicas(self, config: Config, world_size: int) -> int:
        """Replicas in sync for a job of ``world_size`` processes (each process mirrors over its devices)."""
        count, kind = devices_per_process(config, hardware.gpu_count())
        if world_size > 1 and kind == "CPU" and count > 1:
            raise ConfigError(
                f"strategy.cpu_devices={count} works in one process only (MultiWorkerMirroredStrategy uses one CPU "
                f"device per process) and this job has {world_size}; drop strategy.cpu_devices or use one process "
                "(launcher.nproc_per_node=1)."
            )
        handed_in = handed_in_tf_config()
        if handed_in is not None and len(handed_in.workers) != world_size:
            raise _size_mismatch(handed_in, world_size)
        return world_size * count

    def sweep_point(self, config: Config, world_size: int) -> tuple[Config, int]:
        """A sweep point of ``world_size`` replicas: one process per replica (MultiWorkerMirrored), or, when the job
        mirrors over logical CPU devices (strategy.cpu_devices > 1), one process with ``world_size`` of them."""
        if config.cpu_devices > 1:
            return dataclasses.replace(config, cpu_devices=world_size), 1
        return config, world_size


PLUGIN = Mirrored()
