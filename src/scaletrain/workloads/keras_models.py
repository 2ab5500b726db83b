"""The Keras 3 twins of torch_models.py: the same layers and parameter counts, channels last (NHWC)."""

from __future__ import annotations

from typing import Any

import numpy as np


def seeded(seed: int, build: Any, *args: Any, **kwargs: Any) -> Any:
    """A model_fn for TFTask: seeds Python, NumPy and TensorFlow, then builds, so every process starts identical."""

    def model_fn() -> Any:
        import keras

        keras.utils.set_random_seed(seed)
        return build(*args, **kwargs)

    return model_fn


def nhwc(images: np.ndarray) -> np.ndarray:
    """NCHW images (the workloads' NumPy layout, PyTorch's) as NHWC (Keras' default), contiguous."""
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def mlp(input_shape: tuple[int, ...], width: int, num_classes: int, depth: int = 2) -> Any:
    """``depth`` hidden layers of ``width`` with ReLU; inputs are flattened first."""
    import keras

    layers: list[Any] = [keras.Input(input_shape), keras.layers.Flatten()]
    layers += [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
    layers.append(keras.layers.Dense(num_classes))
    return keras.Sequential(layers)


def small_cnn(in_channels: int, image_size: int, num_classes: int, hidden: int = 128) -> Any:
    """Two 3x3 convolutions (16, 32 channels), one 2x2 max-pool, then a hidden dense layer."""
    import keras

    return keras.Sequential(
        [
            keras.Input((image_size, image_size, in_channels)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(num_classes),
        ]
    )


def linear() -> Any:
    import keras

    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
