"""Shared parts of the workloads that read image data sets from a local directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scaletrain.errors import ConfigError
from scaletrain.workloads.task import TFTask, TorchTask


@dataclass
class ImageFilesConfig:
    name: str = ""
    data_dir: str = "???"
    limit: int | None = None  # use only the first N training images (quick runs)

    def validate(self) -> None:
        if self.data_dir in ("", "???"):
            raise ConfigError(f"workload.data_dir is required for {self.name}; pass workload.data_dir=/path/to/data.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"workload.limit={self.limit} must be at least 1 (or null for all images).")


def check_dir(config: ImageFilesConfig) -> Path:
    path = Path(config.data_dir)
    if not path.is_dir():
        raise ConfigError(
            f"workload.data_dir={path} is not a directory; point it at the extracted {config.name} files."
        )
    return path


def _limited(arrays, config: ImageFilesConfig):
    x_train, y_train, x_val, y_val = arrays
    if config.limit is not None:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
    return x_train, y_train, x_val, y_val


def torch_task(arrays, config: ImageFilesConfig, seed: int, in_channels: int, image_size: int) -> TorchTask:
    import torch

    from scaletrain.workloads import torch_models

    x_train, y_train, x_val, y_val = _limited(arrays, config)
    torch.manual_seed(seed)
    model = torch_models.small_cnn(in_channels, image_size, 10)
    tensors = [torch.from_numpy(a) for a in (x_train, y_train, x_val, y_val)]
    return TorchTask(model=model, train=(tensors[0], tensors[1]), val=(tensors[2], tensors[3]))


def tf_task(arrays, config: ImageFilesConfig, seed: int, in_channels: int, image_size: int) -> TFTask:
    from scaletrain.workloads import keras_models

    x_train, y_train, x_val, y_val = _limited(arrays, config)
    model_fn = keras_models.seeded(seed, keras_models.small_cnn, in_channels, image_size, 10)
    nhwc = keras_models.nhwc
    return TFTask(model_fn=model_fn, train=(nhwc(x_train), y_train), val=(nhwc(x_val), y_val))
