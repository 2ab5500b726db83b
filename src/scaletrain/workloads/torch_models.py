"""The PyTorch models of the built-in workloads (each has a Keras twin of the same architecture)."""

from __future__ import annotations

from torch import nn


def mlp(input_dim: int, width: int, num_classes: int, depth: int = 2) -> nn.Module:
    """``depth`` hidden layers of ``width`` with ReLU; images are flattened first."""
    layers: list[nn.Module] = [nn.Flatten()]
    features = input_dim
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def small_cnn(in_channels: int, image_size: int, num_classes: int, hidden: int = 128) -> nn.Module:
    """Two 3x3 convolutions (16, 32 channels), one 2x2 max-pool, then a hidden dense layer."""
    flat = 32 * (image_size // 2) ** 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )
