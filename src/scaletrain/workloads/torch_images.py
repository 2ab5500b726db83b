"""``ImageRecords`` (workloads/image_records.py) as a torch map-style Dataset, in a module of its own: a DataLoader
worker unpickles it by its module path, and only a torch rank imports it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class TorchImages(Dataset):
    """``ImageRecords`` as a torch map-style Dataset: (float32 image (C, H, W) in [0, 1], label)."""

    def __init__(self, records: Any) -> None:  # an ImageRecords
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.records.item(int(index))
        pixels = np.array(image, dtype=np.float32)  # a copy out of the map
        pixels /= 255.0
        return torch.from_numpy(pixels), label
