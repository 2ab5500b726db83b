"""MNIST and CIFAR-10 read lazily from their files: a torch ``Dataset`` (random access by index, for a
``DataLoader``) and a ``tf.data.Dataset`` of rows, both giving exactly what ``readers.load_mnist`` and
``readers.load_cifar10`` give (float32 in [0, 1]; NCHW for torch, NHWC for Keras; int64 labels for torch, int32 for
TensorFlow, as its stepper fed them before).

What is read, and when:

- MNIST idx files: only the headers when the data set is built. The images and labels are memory-mapped
  (``np.memmap`` past the header), opened on first use in each process (so each DataLoader worker maps the file
  itself and nothing large is copied to it); a sample's pages are read when the sample is. A gzipped file cannot
  be mapped: torch decompresses it into memory (uint8) on first use in each process, so ``gunzip`` the files to
  read them lazily; tf.data streams it.
- CIFAR-10, binary version (``cifar-10-batches-bin``: ``data_batch_1.bin`` … ``test_batch.bin``, records of a label
  byte and 3,072 image bytes): memory-mapped like MNIST; nothing is read up front but the file sizes.
- CIFAR-10, python version (``cifar-10-batches-py``): a pickle cannot be read in part, so each batch file is read
  once up front for its length and labels (its images dropped), and its images are unpickled again on first use
  of that file in each process (uint8, 30 MB a file) and kept there.

tf.data reads idx and binary files with ``FixedLengthRecordDataset`` (no Python; gzip streamed) and pickles through
an index map that reads ``TF_CHUNK`` rows per call from the same lazy records; either way rows are decoded and
scaled ``TF_CHUNK`` at a time (a per-row map is 12 times slower: 4.3 s against 0.35 s an MNIST epoch here).
"""

from __future__ import annotations

import os
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from scaletrain.contract.errors import ConfigError
from scaletrain.workloads import readers

TF_CHUNK = 1024  # rows decoded and scaled together by tf.data


class _Part:
    """One file (or idx image/label pair) of records: ``length`` known up front, the arrays opened on first use in
    each process and never pickled (a DataLoader worker opens its own)."""

    length: int

    def __init__(self) -> None:
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._pid = -1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images (n, C, H, W), labels (n,)) of this process: memory maps, or arrays read on first use."""
        if self._arrays is None or self._pid != os.getpid():
            self._arrays, self._pid = self._open(), os.getpid()
        return self._arrays

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def tf_chunks(self, tf: Any, shape: tuple[int, ...]) -> Any:
        """A tf.data.Dataset of (uint8 images (k, C, H, W), int32 labels (k,)) chunks of up to ``TF_CHUNK`` rows, in
        order: by default an index map over ``arrays()``, one Python call a chunk."""
        length, size = self.length, TF_CHUNK

        def read(start: np.int64) -> tuple[np.ndarray, np.ndarray]:
            images, labels = self.arrays()
            stop = min(int(start) + size, length)
            return np.asarray(images[start:stop]), labels[start:stop].astype(np.int32)

        def chunk(start: Any) -> tuple[Any, Any]:
            images, labels = tf.numpy_function(read, [start], (tf.uint8, tf.int32), stateful=False)
            return tf.ensure_shape(images, (None, *shape)), tf.ensure_shape(labels, (None,))

        return tf.data.Dataset.range(0, length, size).map(chunk)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None, "_pid": -1}


def _fixed_records(tf: Any, path: Path, record_bytes: int, header_bytes: int = 0) -> Any:
    """Chunks of up to TF_CHUNK records of a file as uint8 (k, record_bytes)."""
    compression = "GZIP" if readers.is_gzip(path) else None
    records = tf.data.FixedLengthRecordDataset(str(path), record_bytes, header_bytes, compression_type=compression)
    return records.batch(TF_CHUNK).map(lambda chunk: tf.reshape(tf.io.decode_raw(chunk, tf.uint8), (-1, record_bytes)))


class IdxPart(_Part):
    """An idx images file (N, H, W) of unsigned bytes and its labels file (N,)."""

    def __init__(self, images: Path, labels: Path) -> None:
        super().__init__()
        self.images, self.labels = Path(images), Path(labels)
        image_header, label_header = readers.read_idx_header(self.images), readers.read_idx_header(self.labels)
        for path, (dtype, _, _) in ((self.images, image_header), (self.labels, label_header)):
            if dtype != np.uint8:
                raise ConfigError(f"{path} holds {dtype} values; MNIST's idx files hold unsigned bytes.")
        (_, image_shape, self.image_offset), (_, label_shape, self.label_offset) = image_header, label_header
        if len(image_shape) != 3 or len(label_shape) != 1 or image_shape[0] != label_shape[0]:
            raise ConfigError(
                f"{self.images} holds images {image_shape} and {self.labels} labels {label_shape}; they must be "
                "(N, rows, columns) and (N,) with the same N."
            )
        self.length, self.image_shape = image_shape[0], (1, *image_shape[1:])

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            self._map(self.images, self.image_offset, (self.length, *self.image_shape)),
            self._map(self.labels, self.label_offset, (self.length,)),
        )

    @staticmethod
    def _map(path: Path, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        if readers.is_gzip(path):
            return readers.read_idx(path).reshape(shape)  # a gzip stream has no random access: read it whole
        return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=shape)

    def tf_chunks(self, tf: Any, shape: tuple[int, ...]) -> Any:
        images = _fixed_records(tf, self.images, int(np.prod(shape)), self.image_offset)
        labels = _fixed_records(tf, self.labels, 1, self.label_offset)
        return tf.data.Dataset.zip(
            images.map(lambda chunk: tf.reshape(chunk, (-1, *shape))),
            labels.map(lambda chunk: tf.cast(tf.reshape(chunk, (-1,)), tf.int32)),
        )


class CifarBinaryPart(_Part):
    """One file of the CIFAR-10 binary version: records of a label byte and a (3, 32, 32) image."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        size = self.path.stat().st_size
        if size % readers.CIFAR10_RECORD:
            raise ConfigError(
                f"{self.path} is not a CIFAR-10 binary batch: {size} bytes is not a whole number of "
                f"{readers.CIFAR10_RECORD}-byte records."
            )
        self.length = size // readers.CIFAR10_RECORD

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        records = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.length, readers.CIFAR10_RECORD))
        images = np.lib.stride_tricks.as_strided(  # a view of the records past each label byte, never a copy
            records[:, 1:], shape=(self.length, 3, 32, 32), strides=(readers.CIFAR10_RECORD, 1024, 32, 1)
        )
        return images, records[:, 0]

    def tf_chunks(self, tf: Any, shape: tuple[int, ...]) -> Any:
        def split(records: Any) -> tuple[Any, Any]:
            return tf.reshape(records[:, 1:], (-1, *shape)), tf.cast(records[:, 0], tf.int32)

        return _fixed_records(tf, self.path, readers.CIFAR10_RECORD).map(split)


class CifarPicklePart(_Part):
    """One batch file of the CIFAR-10 python version: its labels kept, its images unpickled on first use."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.labels = readers.read_cifar_batch(self.path)[1]  # the images are dropped until a process needs them
        self.length = len(self.labels)

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        return readers.read_cifar_batch(self.path)[0], self.labels


class ImageRecords:
    """The (image, label) records of one split over one or more files, in file order, the first ``limit`` only."""

    def __init__(self, parts: list[_Part], shape: tuple[int, int, int], limit: int | None = None) -> None:
        self.parts, self.shape = list(parts), tuple(shape)
        self.starts = np.cumsum([0] + [part.length for part in self.parts])
        total = int(self.starts[-1])
        self.length = total if limit is None else min(total, limit)

    def limited(self, limit: int | None) -> ImageRecords:
        return ImageRecords(self.parts, self.shape, limit)

    def __len__(self) -> int:
        return self.length

    def item(self, index: int) -> tuple[np.ndarray, int]:
        """Record ``index``: its uint8 image (C, H, W) (a view of the file's map) and its label."""
        if not 0 <= index < self.length:
            raise IndexError(f"record {index} of {self.length}")
        k = int(np.searchsorted(self.starts, index, side="right")) - 1
        images, labels = self.parts[k].arrays()
        j = index - int(self.starts[k])
        return images[j], int(labels[j])

    def torch_dataset(self) -> Any:
        """These records as a torch Dataset (workloads/torch_images.py, imported here: the driver never loads torch)."""
        from scaletrain.workloads.torch_images import TorchImages

        return TorchImages(self)

    def tf_dataset(self) -> Any:
        """A tf.data.Dataset of (float32 image (H, W, C) in [0, 1], int32 label) rows, with a known length."""
        from scaletrain.rank.strategies.tf_base import import_tensorflow

        tf = import_tensorflow()
        chunks = reduce(lambda a, b: a.concatenate(b), [part.tf_chunks(tf, self.shape) for part in self.parts])

        def scaled(images: Any, labels: Any) -> tuple[Any, Any]:
            return tf.cast(tf.transpose(images, (0, 2, 3, 1)), tf.float32) / 255.0, labels

        rows = chunks.map(scaled, num_parallel_calls=tf.data.AUTOTUNE).unbatch()  # in order: tf.data is deterministic
        if self.length < int(self.starts[-1]):
            rows = rows.take(self.length)
        return rows.apply(tf.data.experimental.assert_cardinality(self.length))


def mnist(data_dir: Path) -> tuple[ImageRecords, ImageRecords]:
    """MNIST's training and test records (the test set is the validation set)."""
    files = readers.find_mnist_files(Path(data_dir))
    train = IdxPart(files["train_images"], files["train_labels"])
    test = IdxPart(files["test_images"], files["test_labels"])
    return ImageRecords([train], train.image_shape), ImageRecords([test], test.image_shape)


def cifar10(data_dir: Path) -> tuple[ImageRecords, ImageRecords]:
    """CIFAR-10's five training batches in order, and the test batch (the validation set)."""
    kind, train_files, test_file = readers.find_cifar10_files(Path(data_dir))
    part = CifarPicklePart if kind == "pickle" else CifarBinaryPart
    shape = (3, 32, 32)
    return ImageRecords([part(p) for p in train_files], shape), ImageRecords([part(test_file)], shape)
