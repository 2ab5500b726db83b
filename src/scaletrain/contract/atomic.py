"""One way to write a file that other processes read while it changes (a beacon, a summary, job.json, a manifest): a
reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def replacing(path: Path | str, mode: str = "w", *, durable: bool = False) -> Iterator[IO[Any]]:
    """A new file to write ``path``'s content into; on a clean exit it replaces ``path`` in one rename, on an
    exception it is removed and ``path`` stays as it was. ``durable``: the file and its directory are synced to disk
    first, so a crash of the machine cannot leave the name pointing at lost data (a checkpoint's manifest)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")  # unique per process and call
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask's mode, as a plain open gives
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(directory: Path | str) -> None:
    """Sync a directory's entries to disk: a rename into it survives a crash of the machine."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: Path | str, data: str | bytes, *, durable: bool = False) -> Path:
    """Replace ``path`` with ``data`` atomically (``replacing``); returns the path."""
    with replacing(path, "wb" if isinstance(data, bytes) else "w", durable=durable) as f:
        f.write(data)
    return Path(path)
