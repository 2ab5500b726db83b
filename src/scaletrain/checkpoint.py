"""Atomic checkpoint files: a crash mid-write never replaces the last good checkpoint."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_NAME = re.compile(r"^step_(\d{9})\.ckpt$")


def path_for(directory: Path, step: int) -> Path:
    return Path(directory) / f"step_{step:09d}.ckpt"


def save(directory: Path, step: int, write: Callable[[BinaryIO], None], keep_last: int = 2) -> Path:
    """Write a checkpoint through ``write`` into a temp file, fsync it, then rename it into place."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = path_for(directory, step)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ckpt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    for old in all_checkpoints(directory)[:-keep_last]:
        old.unlink(missing_ok=True)
    return final


def all_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first (temp files of interrupted writes are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def latest(directory: Path) -> Path | None:
    found = all_checkpoints(directory)
    return found[-1] if found else None


def step_of(path: Path) -> int:
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint file name")
    return int(match.group(1))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
