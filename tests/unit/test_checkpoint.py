"""Atomic checkpoints: a crash mid-write never replaces or corrupts the last good checkpoint."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest

from scaletrain import checkpoint


def write_obj(obj):
    return lambda f: pickle.dump(obj, f)


def test_save_then_latest_and_keep_last(tmp_path):
    for step in (10, 20, 30):
        checkpoint.save(tmp_path, step, write_obj({"step": step}), keep_last=2)
    assert [checkpoint.step_of(p) for p in checkpoint.all_checkpoints(tmp_path)] == [20, 30]
    assert pickle.loads(checkpoint.latest(tmp_path).read_bytes()) == {"step": 30}


def test_failed_write_leaves_previous_checkpoint_and_no_temp_file(tmp_path):
    checkpoint.save(tmp_path, 1, write_obj("good"))

    def crash(f):
        f.write(b"half a checkpoint")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        checkpoint.save(tmp_path, 2, crash)
    assert checkpoint.latest(tmp_path).name == "step_000000001.ckpt"
    assert pickle.loads(checkpoint.latest(tmp_path).read_bytes()) == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000001.ckpt"]


def test_process_killed_mid_write_keeps_last_good_checkpoint(tmp_path):
    """A real SIGKILL while the next checkpoint is half written: the previous one stays the latest and loads."""
    checkpoint.save(tmp_path, 1, write_obj("good"))
    code = textwrap.dedent(f"""
        import os, signal, sys
        from scaletrain import checkpoint
        def write(f):
            f.write(b"x" * 1000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.save({str(tmp_path)!r}, 2, write)
    """)
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert checkpoint.latest(tmp_path).name == "step_000000001.ckpt"
    assert pickle.loads(checkpoint.latest(tmp_path).read_bytes()) == "good"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1  # the interrupted temp file is ignored, never mistaken for a checkpoint


def test_latest_of_missing_directory_is_none(tmp_path):
    assert checkpoint.latest(tmp_path / "nope") is None
    assert os.listdir(tmp_path) == []
