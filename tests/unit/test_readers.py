"""MNIST idx and CIFAR-10 (pickle and binary) readers, on small files written here in those exact formats: the
whole-set readers, and the lazy ones the workloads train from (the same values, nothing read up front)."""

from __future__ import annotations

import gzip
import pickle
import struct
import tracemalloc

import numpy as np
import pytest

from scaletrain.contract.errors import ConfigError
from scaletrain.workloads import image_records, readers


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


def make_cifar10_binary(directory, written):
    """The binary version of the batches ``make_cifar10`` wrote: records of a label byte and 3,072 image bytes."""
    for name, (data, labels) in written.items():
        records = np.concatenate([np.asarray(labels, np.uint8)[:, None], data], axis=1)
        (directory / f"{name}.bin").write_bytes(records.tobytes())


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


def _torch_arrays(records):
    dataset = records.torch_dataset()
    items = [dataset[i] for i in range(len(dataset))]
    return np.stack([x.numpy() for x, _ in items]), np.array([y for _, y in items]), items[0][0].dtype


@pytest.mark.parametrize("gz", [False, True])
def test_lazy_mnist_gives_what_the_whole_set_reader_gives(tmp_path, gz):
    make_mnist(tmp_path, gz=gz)
    eager = readers.load_mnist(tmp_path)
    train, test = image_records.mnist(tmp_path)
    for records, (x, y) in ((train, eager[:2]), (test, eager[2:])):
        got_x, got_y, dtype = _torch_arrays(records)
        assert str(dtype) == "torch.float32" and got_x.shape[1:] == (1, 28, 28)
        assert np.array_equal(got_x, x) and np.array_equal(got_y, y)  # bit for bit
    assert isinstance(train.parts[0].arrays()[0], np.ndarray if gz else np.memmap)


@pytest.mark.parametrize("kind", ["pickle", "binary"])
def test_lazy_cifar10_gives_what_the_whole_set_reader_gives(tmp_path, kind):
    written = make_cifar10(tmp_path)
    x_train, y_train, x_test, y_test = readers.load_cifar10(tmp_path)
    data = tmp_path
    if kind == "binary":
        data = tmp_path / "bin"
        data.mkdir()
        make_cifar10_binary(data, written)
    assert readers.find_cifar10_files(data)[0] == kind
    train, test = image_records.cifar10(data)
    got_x, got_y, _ = _torch_arrays(train)
    assert got_x.shape == (20, 3, 32, 32) and np.array_equal(got_x, x_train) and np.array_equal(got_y, y_train)
    got_x, got_y, _ = _torch_arrays(test)
    assert np.array_equal(got_x, x_test) and np.array_equal(got_y, y_test)
    images = train.parts[0].arrays()[0]
    assert images.flags.writeable == (kind == "pickle")  # binary: a read-only view of the map, never a copy


def test_limit_keeps_the_first_records_and_an_index_past_them_is_refused(tmp_path):
    make_mnist(tmp_path)
    train = image_records.mnist(tmp_path)[0].limited(5)
    dataset = train.torch_dataset()
    assert len(dataset) == 5
    assert np.array_equal(dataset[4][0].numpy(), readers.load_mnist(tmp_path)[0][4])
    with pytest.raises(IndexError):
        dataset[5]


def test_a_dataloader_batch_for_batch_as_the_in_memory_path(tmp_path):
    """Two worker processes, each mapping the file itself, give the batches ShardedBatches gave from memory."""
    import torch

    from scaletrain.rank.loops.torch_data import ShardedBatches
    from scaletrain.rank.loops.torch_loader import LoaderBatches

    make_mnist(tmp_path, n_train=40)
    x, y = (torch.from_numpy(a) for a in readers.load_mnist(tmp_path)[:2])
    train = image_records.mnist(tmp_path)[0]
    train.parts[0].arrays()  # opened here first: the workers must open their own, not inherit a pickled copy
    loader = LoaderBatches(train.torch_dataset(), 4, 1, 2, seed=3, num_workers=2, pin_memory=False)
    memory = ShardedBatches(x, y, 4, 1, 2, seed=3, drop_last=True)
    for epoch, skip in ((0, 0), (1, 2)):
        pairs = list(zip(loader.epoch(epoch, skip), memory.epoch(epoch, skip), strict=True))
        assert len(pairs) == 5 - skip
        for (got_x, got_y), (want_x, want_y) in pairs:
            assert torch.equal(got_x, want_x) and torch.equal(got_y, want_y) and got_y.dtype == torch.int64


def _sparse_mnist(directory, n):
    """Full-size-looking idx files whose pages hold nothing (a sparse file): reading them whole would show."""
    for name, shape in (("train-images-idx3-ubyte", (n, 28, 28)), ("train-labels-idx1-ubyte", (n,)),
                        ("t10k-images-idx3-ubyte", (10, 28, 28)), ("t10k-labels-idx1-ubyte", (10,))):  # fmt: skip
        with open(directory / name, "wb") as f:
            f.write(bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape))
            f.truncate(f.tell() + int(np.prod(shape)))


def test_nothing_is_read_up_front_and_workers_get_no_pixels(tmp_path):
    n = 200_000  # 157 MB of images, read whole that would be 627 MB of float32
    _sparse_mnist(tmp_path, n)
    (tmp_path / "bin").mkdir()
    for name in [*readers.CIFAR10_TRAIN, readers.CIFAR10_TEST]:
        with open(tmp_path / "bin" / f"{name}.bin", "wb") as f:
            f.truncate(10_000 * readers.CIFAR10_RECORD)  # the real files' size: 30 MB each
    tracemalloc.start()
    try:
        train = image_records.mnist(tmp_path)[0]
        cifar = image_records.cifar10(tmp_path / "bin")[0]
        dataset, cifar_set = train.torch_dataset(), cifar.torch_dataset()
        last, label = dataset[n - 1]
        cifar_last = cifar_set[len(cifar_set) - 1][0]
        shipped = pickle.dumps(dataset) + pickle.dumps(cifar_set)  # what a DataLoader worker would receive
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(dataset) == n and len(cifar_set) == 50_000
    assert last.shape == (1, 28, 28) and cifar_last.shape == (3, 32, 32) and label == 0
    assert peak < 1_000_000, peak  # one image and the bookkeeping, not the data set
    assert len(shipped) < 10_000
    assert pickle.loads(shipped[: len(pickle.dumps(dataset))]).records.parts[0]._arrays is None


def test_bad_lazy_files_are_refused_when_the_data_set_is_built(tmp_path):
    make_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1])  # one label short
    with pytest.raises(ConfigError, match="train-labels-idx1-ubyte is truncated"):
        image_records.mnist(tmp_path)
    write_idx(labels, np.zeros(11))  # a whole file, but 11 labels for 12 images
    with pytest.raises(ConfigError, match="with the same N"):
        image_records.mnist(tmp_path)
    for name in [*readers.CIFAR10_TRAIN, readers.CIFAR10_TEST]:
        (tmp_path / f"{name}.bin").write_bytes(bytes(readers.CIFAR10_RECORD + 1))
    with pytest.raises(ConfigError, match="not a whole number of 3073-byte records"):
        image_records.cifar10(tmp_path)


def _tf_rows(records):
    rows = list(records.tf_dataset().as_numpy_iterator())
    return np.stack([x for x, _ in rows]), np.array([y for _, y in rows])


@pytest.mark.tf
@pytest.mark.parametrize("data", ["mnist", "mnist.gz", "cifar10 pickle", "cifar10 binary"])
def test_lazy_tf_data_gives_the_whole_set_channels_last(tmp_path, monkeypatch, data):
    from scaletrain.workloads.keras_models import nhwc

    monkeypatch.setattr(image_records, "TF_CHUNK", 5)  # several chunks a file, the last one short
    if data.startswith("mnist"):
        make_mnist(tmp_path, gz=data.endswith(".gz"))
        eager, (train, test) = readers.load_mnist(tmp_path), image_records.mnist(tmp_path)
    else:
        written = make_cifar10(tmp_path)
        eager = readers.load_cifar10(tmp_path)
        if data.endswith("binary"):
            (tmp_path / "bin").mkdir()
            make_cifar10_binary(tmp_path / "bin", written)
        train, test = image_records.cifar10(tmp_path / "bin" if data.endswith("binary") else tmp_path)
    for records, (x, y) in ((train, eager[:2]), (test, eager[2:])):
        assert int(records.tf_dataset().cardinality()) == len(x)  # known: DatasetBatches counts its steps from it
        got_x, got_y = _tf_rows(records)
        assert got_x.dtype == np.float32 and got_y.dtype == np.int32
        assert np.array_equal(got_x, nhwc(x)) and np.array_equal(got_y, y)  # bit for bit
    limited = train.limited(7)
    assert int(limited.tf_dataset().cardinality()) == 7 and np.array_equal(_tf_rows(limited)[0], nhwc(eager[0][:7]))
