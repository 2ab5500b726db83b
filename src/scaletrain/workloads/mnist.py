"""MNIST from its idx files in a local directory, read lazily (memory-mapped; see image_records), with the small
CNN."""

from __future__ import annotations

from dataclasses import dataclass

from scaletrain.workloads import image_files
from scaletrain.workloads.plugin import WorkloadPlugin
from scaletrain.workloads.task import TFTask, TorchTask


@dataclass
class Config(image_files.ImageFilesConfig):
    name: str = "mnist"


class Mnist(WorkloadPlugin):
    Config = Config

    def preflight(self, config: Config) -> None:
        from scaletrain.workloads import image_records  # NumPy: not at the top, the driver registers every workload

        image_records.mnist(image_files.check_dir(config))  # the four files there, their headers and sizes right

    def build_torch(self, config: Config, seed: int) -> TorchTask:
        from scaletrain.workloads import image_records

        records = image_records.mnist(config.data_dir)
        return image_files.torch_task(records, config, seed, in_channels=1, image_size=28)

    def build_tensorflow(self, config: Config, seed: int) -> TFTask:
        from scaletrain.workloads import image_records

        records = image_records.mnist(config.data_dir)
        return image_files.tf_task(records, config, seed, in_channels=1, image_size=28)


PLUGIN = Mnist()
