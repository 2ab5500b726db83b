"""The tpu strategy in a rank: the TPU resolved and its system initialised, TPUStrategy over its chips. Its
settings and the driver's checks (which need no TensorFlow) are strategies/tpu.py."""

from __future__ import annotations

from typing import Any

from scaletrain.rank.strategies.tf_base import TensorFlowStrategy, import_tensorflow
from scaletrain.strategies.tpu import bounded, resolver_kwargs


class TPUStrategy(TensorFlowStrategy):
    def build(self) -> Any:
        tf = import_tensorflow()
        c = self.config
        what = "this VM's TPU" if c.tpu == "local" else f"TPU {c.tpu}"
        resolver = bounded(
            lambda: tf.distribute.cluster_resolver.TPUClusterResolver(**resolver_kwargs(c)),
            c.timeout_s,
            f"looking for {what}",
        )

        def connect() -> None:
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)

        bounded(connect, c.init_timeout_s, f"connecting to {what} and initialising its TPU system")
        return tf.distribute.TPUStrategy(resolver)


RUNTIME = TPUStrategy
