"""MNIST from its idx files in a local directory, read lazily (memory-mapped; see image_records), with the small
CNN."""

from __future__ import annotations

from dataclasses import dataclass

from scaletrain.workloads import image_files, image_records
from scaletrain.workloads.task import TFTask, TorchTask


@dataclass
class Config(image_files.ImageFilesConfig):
    name: str = "mnist"


def preflight(config: Config) -> None:
    image_records.mnist(image_files.check_dir(config))  # the four files there, their headers and sizes right


def build_torch(config: Config, seed: int) -> TorchTask:
    return image_files.torch_task(image_records.mnist(config.data_dir), config, seed, in_channels=1, image_size=28)


def build_tensorflow(config: Config, seed: int) -> TFTask:
    return image_files.tf_task(image_records.mnist(config.data_dir), config, seed, in_channels=1, image_size=28)
