"""MNIST idx and CIFAR-10 pickle readers, on small files written here in those exact formats."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from scaletrain.errors import ConfigError
from scaletrain.workloads import readers


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(payload)


def make_mnist(directory, n_train=12, n_test=5, gz=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, array in arrays.items():
        write_idx(directory / (name + (".gz" if gz else "")), array, gz)
    return arrays


def make_cifar10(directory, per_batch=4):
    rng = np.random.default_rng(1)
    written = {}
    for name in [*readers.CIFAR10_TRAIN, readers.CIFAR10_TEST]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(directory / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        written[name] = (data, labels)
    return written


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reader_round_trips(tmp_path, gz):
    arrays = make_mnist(tmp_path, gz=gz)
    x_train, y_train, x_test, y_test = readers.load_mnist(tmp_path)
    assert x_train.shape == (12, 1, 28, 28) and x_train.dtype == np.float32
    np.testing.assert_allclose(x_train[:, 0] * 255, arrays["train-images-idx3-ubyte"], atol=1e-3)
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    assert x_test.shape == (5, 1, 28, 28) and y_train.dtype == np.int64


def test_mnist_missing_file_names_it(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match="has no t10k-labels-idx1-ubyte"):
        readers.load_mnist(tmp_path)


def test_idx_bad_magic_and_truncation_are_reported(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(ConfigError, match="not an idx file"):
        readers.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 4)
    with pytest.raises(ConfigError, match="truncated"):
        readers.read_idx(tmp_path / "short")


def test_cifar10_reader_round_trips(tmp_path):
    written = make_cifar10(tmp_path)
    x_train, y_train, x_test, y_test = readers.load_cifar10(tmp_path)
    assert x_train.shape == (20, 3, 32, 32) and x_test.shape == (4, 3, 32, 32)
    first_data, first_labels = written["data_batch_1"]
    np.testing.assert_allclose(x_train[:4].reshape(4, -1) * 255, first_data, atol=1e-3)
    assert y_train[:4].tolist() == first_labels
    assert y_test.tolist() == written["test_batch"][1]


def test_cifar10_missing_batches_are_listed(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="lacks data_batch_3"):
        readers.load_cifar10(tmp_path)
