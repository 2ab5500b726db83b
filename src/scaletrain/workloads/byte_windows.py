"""workload=charlm's training examples: non-overlapping windows of seq_len + 1 bytes of a corpus file, counted
(``windows``, the PyTorch Dataset's length: workloads/gpt_torch.py) and read as a tf.data pipeline (``tf_windows``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def windows(path: Path, seq_len: int, limit: int | None = None) -> int:
    """How many non-overlapping windows of seq_len + 1 bytes the file holds (at most ``limit``)."""
    count = path.stat().st_size // (seq_len + 1)
    return count if limit is None else min(count, limit)


def tf_windows(tf: Any, path: Path, seq_len: int, limit: int | None = None) -> Any:
    """The same windows as a tf.data.Dataset of (x, y) int32 rows (no Python in the pipeline)."""
    count = windows(path, seq_len, limit)

    def pair(record: Any) -> tuple[Any, Any]:
        window = tf.cast(tf.io.decode_raw(record, tf.uint8), tf.int32)
        return window[:-1], window[1:]

    rest = path.stat().st_size % (seq_len + 1)  # the bytes after the last whole window
    records = tf.data.FixedLengthRecordDataset(str(path), seq_len + 1, footer_bytes=rest).take(count)
    return records.map(pair).apply(tf.data.experimental.assert_cardinality(count))
