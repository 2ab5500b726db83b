"""Random inputs labelled by a random linear teacher, and an MLP of configurable size: for throughput runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaletrain.contract.errors import ConfigError
from scaletrain.workloads.plugin import WorkloadPlugin
from scaletrain.workloads.task import TFTask, TorchTask


@dataclass
class Config:
    name: str = "synthetic"
    num_samples: int = 8192
    input_dim: int = 256
    width: int = 512
    depth: int = 4
    num_classes: int = 10

    def validate(self) -> None:
        for key in ("num_samples", "input_dim", "width", "depth", "num_classes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"workload.{key}={getattr(self, key)} must be at least 1.")


def data(config: Config, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The same arrays on every rank and in every framework for a given seed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((config.num_samples, config.input_dim), dtype=np.float32)
    teacher = rng.standard_normal((config.input_dim, config.num_classes), dtype=np.float32)
    return x, (x @ teacher).argmax(axis=1).astype(np.int64)


class Synthetic(WorkloadPlugin):
    Config = Config

    def build_torch(self, config: Config, seed: int) -> TorchTask:
        import torch

        from scaletrain.workloads import torch_models

        x, y = data(config, seed)
        torch.manual_seed(seed)
        model = torch_models.mlp(config.input_dim, config.width, config.num_classes, depth=config.depth)
        return TorchTask(model=model, train=(torch.from_numpy(x), torch.from_numpy(y)))

    def build_tensorflow(self, config: Config, seed: int) -> TFTask:
        from scaletrain.workloads import keras_models

        x, y = data(config, seed)
        model_fn = keras_models.seeded(
            seed, keras_models.mlp, (config.input_dim,), config.width, config.num_classes, depth=config.depth
        )
        return TFTask(model_fn=model_fn, train=(x, y))


PLUGIN = Synthetic()
