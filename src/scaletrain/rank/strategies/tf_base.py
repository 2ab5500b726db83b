"""What the TensorFlow strategies share: the tf.distribute object, process-level collectives, NumPy checkpoints."""

from __future__ import annotations

import json
import logging
import os
from abc import abstractmethod
from typing import Any, BinaryIO

import numpy as np

from scaletrain.rank.strategies.base import Strategy

_STRUCTURE = "__structure__"
log = logging.getLogger("scaletrain")
_PUBLIC_NAMES = {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}  # the class behind the public name


def import_tensorflow() -> Any:
    """TensorFlow, imported with its C++ info and warning lines off unless the user asked for them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel(logging.WARNING)  # its INFO lines (every all-reduce it plans) would reach rank 0's log
    return tf


class TensorFlowStrategy(Strategy):
    """A strategy for Keras models: the TensorFlow training loop drives any subclass through ``tf_strategy``."""

    framework = "tensorflow"
    tf_strategy: Any = None  # the tf.distribute.Strategy, set by setup()

    @abstractmethod
    def build(self) -> Any:
        """Create and return the tf.distribute.Strategy for this process (called once, by setup)."""

    def setup(self) -> None:
        self._reduce_fn = None
        self.tf_strategy = self.build()
        devices = ", ".join(self.tf_strategy.extended.worker_devices)
        log.info(
            "%s: %d replica(s) in sync; this process drives %s",
            _PUBLIC_NAMES.get(type(self.tf_strategy).__name__, type(self.tf_strategy).__name__),
            self.num_replicas,
            devices,
        )

    @property
    def num_replicas(self) -> int:
        """Replicas in sync over the whole job (processes x devices per process)."""
        return int(self.tf_strategy.num_replicas_in_sync)

    @property
    def local_replicas(self) -> int:
        return len(self.tf_strategy.extended.worker_devices)

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum a float64 array over the processes of the job (each process contributes once)."""
        values = np.asarray(values, dtype=np.float64)
        if self.env.world_size == 1:
            return values.copy()
        tf = import_tensorflow()
        if self._reduce_fn is None:
            strategy = self.tf_strategy

            @tf.function
            def reduce_sum(per_replica):
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

            self._reduce_fn = reduce_sum
        local = self.local_replicas
        zeros = np.zeros_like(values)
        per_replica = self.tf_strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(values if ctx.replica_id_in_sync_group % local == 0 else zeros)
        )
        return self._reduce_fn(per_replica).numpy()

    def any_rank(self, flag: bool) -> bool:
        if self.env.world_size == 1:
            return flag
        return bool(self.all_reduce_sum(np.array([1.0 if flag else 0.0]))[0] > 0)

    def barrier(self) -> None:
        if self.tf_strategy is not None and self.env.world_size > 1:
            self.all_reduce_sum(np.ones(1))

    def teardown(self) -> None:
        """TensorFlow has no call that leaves a collective group; the process exit closes its channels."""

    def save_state(self, state: dict[str, Any], f: BinaryIO) -> None:
        """Arrays (NumPy, tensors, variables) and plain values, nested in dicts and lists, as one .npz file."""
        arrays: dict[str, np.ndarray] = {}
        structure = _encode(state, arrays)
        arrays[_STRUCTURE] = np.array(json.dumps(structure))
        np.savez(f, **arrays)

    def load_state(self, f: BinaryIO) -> dict[str, Any]:
        with np.load(f, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        return _decode(json.loads(str(arrays.pop(_STRUCTURE))), arrays)


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        return {"d": {str(k): _encode(v, arrays) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"l": [_encode(v, arrays) for v in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"v": value}
    name = f"a{len(arrays)}"
    arrays[name] = np.asarray(value)
    return {"a": name}


def _decode(node: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    if "d" in node:
        return {k: _decode(v, arrays) for k, v in node["d"].items()}
    if "l" in node:
        return [_decode(v, arrays) for v in node["l"]]
    if "v" in node:
        return node["v"]
    return arrays[node["a"]]
