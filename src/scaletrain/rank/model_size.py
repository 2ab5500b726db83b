"""How many numbers a model trains and how many bytes of gradients a data-parallel step all-reduces: the figures
a scaling prediction needs, read from a PyTorch module (DDP-wrapped or not) or a Keras model alike."""

from __future__ import annotations

from typing import Any

import numpy as np


def model_size(model: Any) -> dict[str, int]:
    """``num_parameters`` and ``gradient_bytes`` of the trainable parameters (torch: ``requires_grad``; Keras:
    ``trainable_variables``; a list of torch tensors: those that require grad); a TypeError for anything else."""
    if hasattr(model, "parameters"):  # torch.nn.Module, DistributedDataParallel
        sizes = [(p.numel(), p.element_size()) for p in model.parameters() if p.requires_grad]
    elif hasattr(model, "trainable_variables"):  # Keras 2 and 3: a tf.DType or a dtype name (bfloat16 included)
        import tensorflow as tf

        sizes = [(int(np.prod(v.shape)), tf.as_dtype(v.dtype).size) for v in model.trainable_variables]
    elif isinstance(model, (list, tuple)) and all(hasattr(t, "numel") for t in model):  # the trained tensors
        sizes = [(t.numel(), t.element_size()) for t in model if t.requires_grad]
    else:
        raise TypeError(
            "model_size needs a torch.nn.Module, a Keras model or a list of torch tensors, "
            f"not a {type(model).__name__}"
        )
    return {"num_parameters": sum(n for n, _ in sizes), "gradient_bytes": sum(n * size for n, size in sizes)}
