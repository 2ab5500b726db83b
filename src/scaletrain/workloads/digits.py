"""scikit-learn's bundled 8x8 digits (no download): an MLP or a small CNN with a held-out validation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaletrain.errors import ConfigError
from scaletrain.workloads.plugin import WorkloadPlugin
from scaletrain.workloads.task import TFTask, TorchTask

MODELS = ("mlp", "cnn")


@dataclass
class Config:
    name: str = "digits"
    model: str = "mlp"
    val_fraction: float = 0.2
    hidden: int = 128

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"workload.model='{self.model}' is not known; use one of: {', '.join(MODELS)}.")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"workload.val_fraction={self.val_fraction} must be between 0 and 1.")
        if self.hidden < 1:
            raise ConfigError(f"workload.hidden={self.hidden} must be at least 1, e.g. workload.hidden=128.")


def data(val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as float32 (N, 1, 8, 8) in [0, 1] and int64 labels, split stratified by class."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=val_fraction, random_state=seed, stratify=labels
    )
    return x_train, y_train, x_val, y_val


class Digits(WorkloadPlugin):
    name = "digits"
    Config = Config

    def build_torch(self, config: Config, seed: int) -> TorchTask:
        import torch

        from scaletrain.workloads import torch_models

        x_train, y_train, x_val, y_val = data(config.val_fraction, seed)
        torch.manual_seed(seed)
        if config.model == "mlp":
            model = torch_models.mlp(64, config.hidden, 10, depth=2)
        else:
            model = torch_models.small_cnn(1, 8, 10, config.hidden)
        tensors = [torch.from_numpy(a) for a in (x_train, y_train, x_val, y_val)]
        return TorchTask(model=model, train=(tensors[0], tensors[1]), val=(tensors[2], tensors[3]))

    def build_tensorflow(self, config: Config, seed: int) -> TFTask:
        from scaletrain.workloads import keras_models

        x_train, y_train, x_val, y_val = data(config.val_fraction, seed)
        if config.model == "mlp":
            model_fn = keras_models.seeded(seed, keras_models.mlp, (8, 8, 1), config.hidden, 10, depth=2)
        else:
            model_fn = keras_models.seeded(seed, keras_models.small_cnn, 1, 8, 10, config.hidden)
        nhwc = keras_models.nhwc
        return TFTask(model_fn=model_fn, train=(nhwc(x_train), y_train), val=(nhwc(x_val), y_val))


PLUGIN = Digits()
