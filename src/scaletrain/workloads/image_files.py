"""Shared parts of the workloads that read image data sets from a local directory (mnist, cifar10): the files read
lazily (``image_records``), through the same DataLoader and tf.data paths as ``workload=custom``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scaletrain.contract.errors import ConfigError
from scaletrain.workloads.task import TFTask, TorchTask, check_worker_start_method

if TYPE_CHECKING:
    from scaletrain.workloads.image_records import ImageRecords


@dataclass
class ImageFilesConfig:
    name: str = ""
    data_dir: str = "???"
    limit: int | None = None  # use only the first N training images (quick runs)
    num_workers: int = 2  # DataLoader worker processes per rank (0: read in the training process)
    worker_start_method: str = "forkserver"  # how they start: forkserver | spawn | fork (see docs/your-model.md)
    shuffle_buffer: int = 10000  # tf.data: rows shuffled together

    def validate(self) -> None:
        if self.data_dir in ("", "???"):
            raise ConfigError(f"workload.data_dir is required for {self.name}; pass workload.data_dir=/path/to/data.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"workload.limit={self.limit} must be at least 1 (or null for all images).")
        if self.num_workers < 0:
            raise ConfigError(f"workload.num_workers={self.num_workers} must be 0 or more.")
        check_worker_start_method(self.worker_start_method)
        if self.shuffle_buffer < 1:
            raise ConfigError(f"workload.shuffle_buffer={self.shuffle_buffer} must be at least 1.")


def check_dir(config: ImageFilesConfig) -> Path:
    path = Path(config.data_dir)
    if not path.is_dir():
        raise ConfigError(
            f"workload.data_dir={path} is not a directory; point it at the extracted {config.name} files."
        )
    return path


def _limited(
    records: tuple[ImageRecords, ImageRecords], config: ImageFilesConfig, in_channels: int, image_size: int
) -> tuple[ImageRecords, ImageRecords]:
    train, val = records
    for split in (train, val):
        if split.shape != (in_channels, image_size, image_size):
            raise ConfigError(
                f"workload.data_dir={config.data_dir} holds {config.name} images of shape {split.shape} (channels, "
                f"rows, columns); the {config.name} model takes {(in_channels, image_size, image_size)}."
            )
    return train.limited(config.limit), val


def torch_task(records, config: ImageFilesConfig, seed: int, in_channels: int, image_size: int) -> TorchTask:
    """The small CNN on torch Datasets over the files, read through a DataLoader (LoaderBatches)."""
    import torch

    from scaletrain.workloads import torch_models

    train, val = _limited(records, config, in_channels, image_size)
    torch.manual_seed(seed)
    model = torch_models.small_cnn(in_channels, image_size, 10)
    return TorchTask(model=model, train=train.torch_dataset(), val=val.torch_dataset(), num_workers=config.num_workers,
                     worker_start_method=config.worker_start_method)  # fmt: skip


def tf_task(records, config: ImageFilesConfig, seed: int, in_channels: int, image_size: int) -> TFTask:
    """The Keras twin of the small CNN on tf.data Datasets over the files (DatasetBatches), channels last."""
    from scaletrain.workloads import keras_models

    train, val = _limited(records, config, in_channels, image_size)
    model_fn = keras_models.seeded(seed, keras_models.small_cnn, in_channels, image_size, 10)
    return TFTask(
        model_fn=model_fn, train=train.tf_dataset(), val=val.tf_dataset(), shuffle_buffer=config.shuffle_buffer
    )
