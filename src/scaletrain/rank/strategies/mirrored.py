"""The mirrored strategy in a rank: TensorFlow's MirroredStrategy over this process's devices, or
MultiWorkerMirroredStrategy across processes. Its settings and driver-side hooks are strategies/mirrored.py."""

from __future__ import annotations

import os
from typing import Any

from scaletrain.contract.errors import ConfigError
from scaletrain.rank.strategies.tf_base import TensorFlowStrategy, import_tensorflow, log
from scaletrain.strategies import tf_config
from scaletrain.strategies.mirrored import gpus_per_process


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


RUNTIME = MirroredStrategy
