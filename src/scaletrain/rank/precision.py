"""Mixed precision (``train.precision``): weights and optimizer state stay in fp32, the forward and backward
passes compute in bf16 or fp16. What a device can run is checked before anything starts (each strategy's pre-flight,
on the device it plans) and again in the rank, on the device it got.

The gradients stay fp32 under every framework's mixed precision (PyTorch's autocast, Keras' mixed policies), so the
all-reduce moves fp32 and the α-β prediction's gradient bytes are unchanged.
"""

from __future__ import annotations

from scaletrain.contract.errors import ConfigError

LOW = {"bf16": "bfloat16", "fp16": "float16"}  # the compute dtype's name, as torch and TensorFlow spell it


def check(precision: str, strategy: str, device: str) -> None:
    """``device``: what the ranks compute on ("CPU", "CUDA", "TPU"). fp16 needs CUDA: its loss scaling is what makes
    float16 gradients train, and CPU and TPU kernels offer bf16 instead."""
    if precision == "fp16" and device.upper() != "CUDA":
        raise ConfigError(
            f"train.precision=fp16 needs CUDA GPUs and this job's {strategy} ranks compute on {device.upper()}; use "
            "train.precision=bf16 (mixed bfloat16, no loss scaling needed) or fp32."
        )
