"""The image folder: generated PNGs whose class is a bright line's direction (learnable in a few epochs), and the
two readers a user would write for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = 4
SIZE = 16


def make_image_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """Write ``root/<split>/<class>/<n>.png`` (grey, SIZE x SIZE): noise plus a bright line whose direction is the
    class (horizontal, vertical, diagonal, anti-diagonal), anywhere in the image."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for label in range(CLASSES):
            folder = Path(root) / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                pixels = rng.integers(0, 96, size=(SIZE, SIZE), dtype=np.uint8)
                start, offset = rng.integers(0, SIZE // 2, size=2)
                steps = np.arange(SIZE // 2)
                rows, cols = {
                    0: (np.full_like(steps, offset * 2), start + steps),
                    1: (start + steps, np.full_like(steps, offset * 2)),
                    2: (start + steps, offset + steps),
                    3: (start + steps, SIZE - 1 - offset - steps),
                }[label]
                pixels[rows, cols] = 255
                Image.fromarray(pixels, mode="L").save(folder / f"{n:05d}.png")
    return Path(root)


def _files(root: str, split: str) -> tuple[list[Path], list[int]]:
    classes = sorted(p.name for p in (Path(root) / split).iterdir() if p.is_dir())
    files = sorted((Path(root) / split).glob("*/*.png"))
    return files, [classes.index(f.parent.name) for f in files]


try:
    import torch
    from torch.utils.data import Dataset

    class ImageFolder(Dataset):
        """A torch Dataset that opens one PNG per item (in the DataLoader's worker processes)."""

        def __init__(self, root: str, split: str) -> None:
            self.files, self.labels = _files(root, split)

        def __len__(self) -> int:
            return len(self.files)

        def __getitem__(self, index: int):
            with Image.open(self.files[index]) as image:
                pixels = np.asarray(image, dtype=np.float32) / 255.0
            return torch.from_numpy(pixels)[None], self.labels[index]

except ImportError:  # a TensorFlow-only install
    pass


def tf_images(root: str, split: str):
    """A tf.data.Dataset of (image, label) rows, decoding each PNG as it is read."""
    import tensorflow as tf

    files, labels = _files(root, split)

    def load(path, label):
        image = tf.io.decode_png(tf.io.read_file(path), channels=1)
        return tf.cast(image, tf.float32) / 255.0, label

    rows = tf.data.Dataset.from_tensor_slices(([str(f) for f in files], np.asarray(labels, np.int32)))
    return rows.map(load, num_parallel_calls=tf.data.AUTOTUNE)
