"""The standard on-disk formats of MNIST (idx) and CIFAR-10 (python pickles, or the binary version): finding and
checking the files, and whole-set readers into NumPy arrays. Nothing is downloaded.

The mnist and cifar10 workloads read their files lazily through ``image_records``; ``load_mnist`` and
``load_cifar10`` read a whole set into memory (for your own code, and as the reference the lazy readers are tested
against)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

from scaletrain.contract.errors import ConfigError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST = "test_batch"
CIFAR10_RECORD = 1 + 3 * 32 * 32  # the binary version: a label byte, then the image (channel, row, column)


def is_gzip(path: Path) -> bool:
    return str(path).endswith(".gz")


def _parse_idx_header(path: Path, head: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise ConfigError(f"{path} is not an idx file (bad magic number); give the original MNIST files.")
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        raise ConfigError(f"{path} is truncated: its header is cut short.")
    shape = struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])
    return np.dtype(_IDX_DTYPES[head[2]]), tuple(shape), 4 + 4 * ndim


def read_idx_header(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, header bytes) of an idx file, reading only its header; a plain file's size is checked too."""
    with (gzip.open if is_gzip(path) else open)(path, "rb") as f:
        dtype, shape, offset = _parse_idx_header(path, f.read(4 + 4 * 255))
    if not is_gzip(path):
        values = (Path(path).stat().st_size - offset) // dtype.itemsize
        if values != int(np.prod(shape)):
            what = "is truncated" if values < int(np.prod(shape)) else "does not match its header"
            raise ConfigError(f"{path} {what}: its header says {shape} but it holds {values} values.")
    return dtype, shape, offset


def read_idx(path: Path) -> np.ndarray:
    """One idx file (optionally gzipped): magic 0x0000TTDD, then DD big-endian uint32 sizes, then the data."""
    with (gzip.open if is_gzip(path) else open)(path, "rb") as f:
        raw = f.read()
    dtype, shape, offset = _parse_idx_header(path, raw[: 4 + 4 * 255])
    data = np.frombuffer(raw, dtype=dtype, offset=offset)
    if data.size != int(np.prod(shape)):
        raise ConfigError(f"{path} is truncated: its header says {shape} but it holds {data.size} values.")
    return data.reshape(shape)


def find_mnist_files(data_dir: Path) -> dict[str, Path]:
    """The four MNIST files in ``data_dir``, accepting ``.gz`` and the ``.idx3-ubyte`` spelling."""
    found: dict[str, Path] = {}
    for key, stem in MNIST_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        candidates = [data_dir / n for n in (stem, stem + ".gz", dotted, dotted + ".gz")]
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            raise ConfigError(f"workload.data_dir={data_dir} has no {stem}[.gz]; put the four MNIST idx files there.")
        found[key] = match
    return found


def load_mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as float32 (N, 1, 28, 28) in [0, 1], labels as int64: train then test."""
    files = find_mnist_files(Path(data_dir))
    arrays = {k: read_idx(p) for k, p in files.items()}
    return (
        (arrays["train_images"].astype(np.float32) / 255.0)[:, None],
        arrays["train_labels"].astype(np.int64),
        (arrays["test_images"].astype(np.float32) / 255.0)[:, None],
        arrays["test_labels"].astype(np.int64),
    )


def find_cifar10_files(data_dir: Path) -> tuple[str, list[Path], Path]:
    """("pickle" or "binary", the five train batch files, the test batch file) in ``data_dir``: the python version
    (cifar-10-batches-py) if it is complete, else the binary version (cifar-10-batches-bin, ``*.bin``)."""
    data_dir = Path(data_dir)
    for kind, suffix in (("pickle", ""), ("binary", ".bin")):
        names = [n + suffix for n in (*CIFAR10_TRAIN, CIFAR10_TEST)]
        if all((data_dir / n).is_file() for n in names):
            return kind, [data_dir / n for n in names[:-1]], data_dir / names[-1]
    missing = [n for n in (*CIFAR10_TRAIN, CIFAR10_TEST) if not (data_dir / n).is_file()]
    raise ConfigError(
        f"workload.data_dir={data_dir} lacks {', '.join(missing)}; extract cifar-10-python.tar.gz there (the "
        "folder cifar-10-batches-py), or cifar-10-binary.tar.gz (cifar-10-batches-bin: data_batch_1.bin ...)."
    )


def check_cifar10_files(data_dir: Path) -> None:
    find_cifar10_files(data_dir)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch[b"labels"], dtype=np.int64)


def load_cifar10(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as float32 (N, 3, 32, 32) in [0, 1], labels as int64: the five train batches, then the test batch."""
    data_dir = Path(data_dir)
    check_cifar10_files(data_dir)
    parts = [read_cifar_batch(data_dir / n) for n in CIFAR10_TRAIN]
    x_test, y_test = read_cifar_batch(data_dir / CIFAR10_TEST)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return x_train.astype(np.float32) / 255.0, y_train, x_test.astype(np.float32) / 255.0, y_test
