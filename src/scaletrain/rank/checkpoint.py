"""Atomic checkpoint files: a crash mid-write never replaces the last good checkpoint.

Retention only ever deletes checkpoints scaletrain wrote: every name it writes is first recorded in the
directory's manifest (``MANIFEST``), and a ``step_*.ckpt`` that is not listed there (a user's own, or one copied
in) is never deleted. ``latest`` still reads any complete ``step_*.ckpt``, so resuming from a copied-in
checkpoint works.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from scaletrain.contract import atomic
from scaletrain.contract.errors import ConfigError, ScaletrainError

MANIFEST = ".scaletrain-checkpoints.json"  # the checkpoint file names scaletrain wrote in this directory
_NEARLY_FULL_BYTES = 1 << 20  # a failed write with less than this left on its disk is taken for a full disk
_NAME = re.compile(r"^step_(\d{9})\.ckpt$")
_TEMP = re.compile(r"^(\.tmp-.+\.ckpt|" + re.escape(MANIFEST) + r"\.tmp-.+)$")  # only the temp names made here


def path_for(directory: Path, step: int) -> Path:
    return Path(directory) / f"step_{step:09d}.ckpt"


def save(
    directory: Path, step: int, write: Callable[[BinaryIO], None], keep_last: int = 2, size: dict | None = None
) -> Path:
    """Write a checkpoint through ``write`` into a temp file, fsync it, rename it into place, then apply retention.

    The name is listed in the manifest just before the rename, so a crash never leaves a checkpoint of ours that
    retention would not know about, and a failed ``write`` never claims a same-named file that was already there.
    ``size``: the job's size that wrote it ({"processes": N, "replicas": R}), kept in the manifest for a resume's
    pre-flight.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = path_for(directory, step)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ckpt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        ours = _read_manifest(directory)
        if final.name not in ours or (size is not None and size != written_size(directory)):
            _write_manifest(directory, [*ours, final.name] if final.name not in ours else ours, size)
        os.replace(tmp, final)
    except BaseException as exc:
        written, full = _size(tmp), _disk_full(exc, directory)  # before the unlink gives the space back
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise DiskFullError(directory, step, _needed_bytes(directory, written)) from None
        raise
    atomic.fsync_dir(directory)
    _retain(directory, keep_last)
    return final


class DiskFullError(ScaletrainError):
    """The checkpoint did not fit on its disk. Exit 2: a restart would only fill the disk again."""

    def __init__(self, directory: Path, step: int, needed_bytes: int) -> None:
        free = shutil.disk_usage(directory).free
        super().__init__(
            f"the checkpoint of step {step} does not fit in {directory}: it needs about {_mib(needed_bytes)} and "
            f"{_mib(free)} are free (the last complete checkpoint is intact); free some space or point "
            "checkpoint.dir at a larger disk, then resume with resume=true."
        )


def _disk_full(exc: BaseException, directory: Path) -> bool:
    """True when a write failed for lack of space: ENOSPC anywhere in the chain, or a writer that hides it (torch's
    zip writer reports "unexpected pos") on a disk with next to nothing left."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    try:
        return shutil.disk_usage(directory).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _needed_bytes(directory: Path, written: int) -> int:
    """The size of this run's last complete checkpoint (the same model), else at least what was written."""
    sizes = [_size(directory / name) for name in _read_manifest(directory)]
    return max([written, *sizes])


def _size(path: Path | str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def _retain(directory: Path, keep_last: int) -> None:
    """Delete the oldest checkpoints this module wrote beyond ``keep_last``; files not in the manifest are kept."""
    listed = _read_manifest(directory)
    ours = sorted(name for name in listed if _NAME.match(name) and (directory / name).is_file())
    stale = ours[:-keep_last] if keep_last > 0 else []
    for name in stale:
        (directory / name).unlink(missing_ok=True)
    # Files first, manifest second: a crash in between leaves only names without files, which are dropped here.
    kept = [name for name in ours if name not in stale]
    if kept != listed:
        _write_manifest(directory, kept)


def _manifest(directory: Path) -> dict:
    try:
        record = json.loads((Path(directory) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}  # no manifest (or a damaged one): claim nothing, so nothing is deleted
    return record if isinstance(record, dict) else {}


def _read_manifest(directory: Path) -> list[str]:
    """The checkpoint names scaletrain wrote in ``directory``; none when there is no readable manifest."""
    try:
        return [str(name) for name in _manifest(directory).get("written", [])]
    except TypeError:
        return []


def written_size(directory: Path) -> dict | None:
    """The size of the job that wrote the directory's checkpoints ({"processes": N, "replicas": R}), when known."""
    size = _manifest(directory).get("size")
    return size if isinstance(size, dict) else None


def _write_manifest(directory: Path, names: list[str], size: dict | None = None) -> None:
    """Replace the manifest atomically (temp file, fsync, rename) so it is never seen half written; the size it
    records stays unless a new one is given."""
    size = size if size is not None else written_size(directory)
    record = {"written": names, **({"size": size} if size else {})}
    atomic.write(directory / MANIFEST, json.dumps(record, indent=1) + "\n", durable=True)


def prepare_dir(directory: Path) -> list[Path]:
    """Remove temp files left by writes that were killed (at start, on rank 0, while nothing else writes here).

    Only names this module creates are touched (``.tmp-*.ckpt`` and the manifest's temp files); returns them.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if _TEMP.match(p.name) and p.is_file() and not p.is_symlink()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def check_dir(path: Path) -> None:
    """Refuse a checkpoint.dir that is a file or not writable, before anything starts (nothing is created here).

    ``os.access`` is honest for root too: it reports read-only mounts and immutable directories as unwritable,
    and permission bits do not stop root from writing.
    """
    path = Path(path)
    if os.path.exists(path) and not os.path.isdir(path):  # os.path: an unsearchable parent is "missing", no raise
        raise ConfigError(f"checkpoint.dir={path} is a file, not a directory; point checkpoint.dir at a directory.")
    existing = path.absolute()
    while not os.path.exists(existing):
        existing = existing.parent
    if not os.path.isdir(existing):
        raise ConfigError(
            f"checkpoint.dir={path} cannot be created because {existing} is a file; "
            "point checkpoint.dir at a directory."
        )
    if not os.access(existing, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        where = "" if existing == path.absolute() else f"cannot be created: {existing} "
        raise ConfigError(
            f"checkpoint.dir={path} {where}is not writable by this user; "
            "fix its permissions or point checkpoint.dir at a writable directory."
        )


def all_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first (temp files of interrupted writes are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def latest(directory: Path) -> Path | None:
    """The newest complete checkpoint, whoever wrote it (resuming from a copied-in one is fine); never a temp file."""
    found = all_checkpoints(directory)
    return found[-1] if found else None


def step_of(path: Path) -> int:
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint file name")
    return int(match.group(1))
