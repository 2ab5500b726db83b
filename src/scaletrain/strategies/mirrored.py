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

from scaletrain import hardware, precision
from scaletrain.env import ClusterEnv
from scaletrain.errors import ConfigError
from scaletrain.strategies import tf_config
from scaletrain.strategies.plugin import Placement, StrategyPlugin
from scaletrain.strategies.tf_base import TensorFlowStrategy, import_tensorflow, log

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


class MirroredStrategy(TensorFlowStrategy):
    def build(self) -> Any:
        tf = import_tensorflow()
        devices = self._local_devices(tf)
        if self.env.world_size == 1:
            return tf.distribute.MirroredStrategy(devices)
        cluster = self._cluster()
        # The addresses the workers reach each other at (host names resolve on each host): the first thing to look
        # at when a job across hosts cannot connect.
        log.info("MultiWorkerMirroredStrategy: TF_CONFIG workers %s; this process is worker %d",
                 ", ".join(cluster.workers), cluster.task_index)  # fmt: skip
        implementation = {
            "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
        }[self.config.communication]
        gpus = sum(1 for d in devices if "GPU" in d)
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": list(cluster.workers)}),
            task_type="worker",
            task_id=cluster.task_index,
            num_accelerators={"GPU": gpus} if gpus else None,
            rpc_layer="grpc",
        )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=implementation, timeout_seconds=self.config.timeout_s
        )
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)

    def _cluster(self) -> tf_config.TFCluster:
        """This rank's TF_CONFIG (written by the launcher) checked against its ClusterEnv, or built from it."""
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            return tf_config.for_rank(self.env)
        cluster = tf_config.parse(raw)
        tf_config.check_matches(cluster, self.env)
        return cluster

    def _local_devices(self, tf: Any) -> list[str]:
        """This process's devices: its share of the host's GPUs, else ``cpu_devices`` logical CPU devices."""
        physical_gpus = tf.config.list_physical_devices("GPU")
        procs = self.env.local_world_size
        want = gpus_per_process(self.config, len(physical_gpus), procs)
        if want > len(physical_gpus) // max(1, procs):
            raise ConfigError(
                f"strategy.gpus={want} asks for {want} GPU(s) per process but TensorFlow sees {len(physical_gpus)} "
                f"for {procs} process(es) on this host; use strategy.gpus=auto."
            )
        if want:
            mine = physical_gpus[self.env.local_rank * want : (self.env.local_rank + 1) * want]
            _set_visible_gpus(tf, mine)
            return [f"/gpu:{i}" for i in range(want)]
        _set_visible_gpus(tf, [])
        count = self.config.cpu_devices if self.env.world_size == 1 else 1
        cpu = tf.config.list_physical_devices("CPU")[0]
        if count > 1 and len(tf.config.get_logical_device_configuration(cpu) or []) != count:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        return [f"/cpu:{i}" for i in range(count)]


def _set_visible_gpus(tf: Any, gpus: list) -> None:
    # Changing visibility after TensorFlow initialised its devices raises, even to the same value.
    if tf.config.list_physical_devices("GPU") and tf.config.get_visible_devices("GPU") != gpus:
        tf.config.set_visible_devices(gpus, "GPU")


class Mirrored(StrategyPlugin):
    name = "mirrored"
    framework = "tensorflow"
    Config = Config

    @property
    def worker_addresses(self) -> bool:
        """TF_CONFIG lists every worker: launchers find every rank's address first, unless you exported a
        TF_CONFIG of your own, which names them itself."""
        return handed_in_tf_config() is None

    procs_per_node = 1  # MirroredStrategy drives all of the host's devices from one process

    def preflight(self, job: Any, placement: Placement) -> None:
        config = job.strategy
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
        precision.check(job.train.precision, "mirrored", "CUDA" if gpus_per_process(config, gpus) else "CPU")
        handed_in_tf_config()  # a TF_CONFIG of your own is checked before anything starts

    def describe(self, job: Any, placement: Placement) -> str:
        count, kind = devices_per_process(job.strategy, hardware.gpu_count())
        found = f"{hardware.gpu_count()} GPU(s) found" if hardware.gpu_count() else "no GPU found"
        return f"mirrored: TensorFlow MirroredStrategy over {count} {kind} device(s) per process ({found})"

    def worker_env(self, job: Any, env: ClusterEnv) -> dict[str, str]:
        """TF_CONFIG for ranks of a multi-process job, so MultiWorkerMirroredStrategy (and user scripts) find peers."""
        handed_in = handed_in_tf_config()
        if handed_in is not None:
            if len(handed_in.workers) != env.world_size:
                raise _size_mismatch(handed_in, env.world_size)
            return {"TF_CONFIG": tf_config.for_rank(env, handed_in.workers).to_json()}
        if env.world_size == 1:
            return {}
        return {"TF_CONFIG": tf_config.for_rank(env).to_json()}

    def replicas(self, job: Any, world_size: int) -> int:
        """Replicas in sync for a job of ``world_size`` processes (each process mirrors over its devices)."""
        config = job.strategy
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

    def create(self, config: Config, env: ClusterEnv) -> MirroredStrategy:
        return MirroredStrategy(config, env)


PLUGIN = Mirrored()
