"""A small ResNet-style CNN: a stem convolution, residual blocks (two 3x3 convolutions and a skip), global average
pooling and a linear classifier; the same architecture in PyTorch and Keras."""

from __future__ import annotations


def resnet(width: int = 16, blocks: int = 2, classes: int = 4):
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(x + self.conv2(self.relu(self.conv1(x))))

    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.ReLU(),
        *[Block(width) for _ in range(blocks)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, classes),
    )


def keras_resnet(width: int = 16, blocks: int = 2, classes: int = 4, size: int = 16):
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 1))
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    for _ in range(blocks):
        y = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        y = layers.Conv2D(width, 3, padding="same")(y)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes)(x))
