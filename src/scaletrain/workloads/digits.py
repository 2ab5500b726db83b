"""The 8x8 handwritten digits shipped in the package (no download): an MLP or a small CNN with a held-out validation
split. The file is scikit-learn's copy of the UCI test set (data/README.md); it is read here rather than through
scikit-learn, which as a dependency cost every TensorFlow process 0.7 s (Keras imports scikit-learn's wrappers
whenever it is installed) and every install 160 MB for this 57 KB file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaletrain.contract.errors import ConfigError
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


DATA = Path(__file__).with_name("data") / "digits.csv.gz"  # 1797 rows: 64 pixels (0..16), then the digit


def data(val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as float32 (N, 1, 8, 8) in [0, 1] and int64 labels, split stratified by class."""
    table = np.loadtxt(DATA, delimiter=",", dtype=np.int64)
    images = (table[:, :64] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = table[:, 64]
    train, val = stratified_split(labels, val_fraction, seed)
    return images[train], labels[train], images[val], labels[val]


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation), both shuffled: ``val_fraction`` of each class held out (rounded), the same
    rows for the same seed on every rank."""
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        held_out[rng.permutation(rows)[: round(len(rows) * val_fraction)]] = True
    return rng.permutation(np.flatnonzero(~held_out)), rng.permutation(np.flatnonzero(held_out))


class Digits(WorkloadPlugin):
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
