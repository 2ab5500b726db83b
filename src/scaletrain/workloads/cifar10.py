"""CIFAR-10 from a local directory, with the small CNN: the binary version (``*.bin``) read lazily (memory-mapped),
or the python pickle batches, each read on first use per process (see image_records)."""

from __future__ import annotations

from dataclasses import dataclass

from scaletrain.workloads import image_files
from scaletrain.workloads.plugin import WorkloadPlugin
from scaletrain.workloads.task import TFTask, TorchTask


@dataclass
class Config(image_files.ImageFilesConfig):
    name: str = "cifar10"


class Cifar10(WorkloadPlugin):
    Config = Config

    def preflight(self, config: Config) -> None:
        from scaletrain.workloads import readers  # NumPy: not at the top, the driver registers every workload

        readers.check_cifar10_files(image_files.check_dir(config))

    def build_torch(self, config: Config, seed: int) -> TorchTask:
        from scaletrain.workloads import image_records

        return image_files.torch_task(
            image_records.cifar10(config.data_dir), config, seed, in_channels=3, image_size=32
        )

    def build_tensorflow(self, config: Config, seed: int) -> TFTask:
        from scaletrain.workloads import image_records

        records = image_records.cifar10(config.data_dir)
        return image_files.tf_task(records, config, seed, in_channels=3, image_size=32)


PLUGIN = Cifar10()
