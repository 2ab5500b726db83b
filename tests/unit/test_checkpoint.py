"""Atomic checkpoints: a crash mid-write never replaces or corrupts the last good checkpoint."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest

from scaletrain.contract.errors import ConfigError
from scaletrain.rank import checkpoint


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
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint.MANIFEST, "step_000000001.ckpt"]


def test_process_killed_mid_write_keeps_last_good_checkpoint(tmp_path):
    """A real SIGKILL while the next checkpoint is half written: the previous one stays the latest and loads."""
    checkpoint.save(tmp_path, 1, write_obj("good"))
    code = textwrap.dedent(f"""
        import os, signal, sys
        from scaletrain.rank import checkpoint
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
    assert [p.name for p in checkpoint.prepare_dir(tmp_path)] == leftovers  # and removed at the next start
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint.MANIFEST, "step_000000001.ckpt"]


def test_latest_of_missing_directory_is_none(tmp_path):
    assert checkpoint.latest(tmp_path / "nope") is None
    assert os.listdir(tmp_path) == []


def test_retention_deletes_only_checkpoints_scaletrain_wrote(tmp_path):
    """A step_*.ckpt that was already there (a user's own) survives keep_last=1; this run's old ones do not."""
    foreign = checkpoint.path_for(tmp_path, 1)
    foreign.write_bytes(b"the user's own checkpoint")
    for step in (10, 20, 30):
        checkpoint.save(tmp_path, step, write_obj(step), keep_last=1)
    assert foreign.read_bytes() == b"the user's own checkpoint"
    assert [checkpoint.step_of(p) for p in checkpoint.all_checkpoints(tmp_path)] == [1, 30]


def test_manifest_outlives_the_process_that_wrote_it(tmp_path):
    """A resumed run (a new process: only the files remain) still retires the earlier attempt's checkpoints."""
    code = f"from scaletrain.rank import checkpoint; checkpoint.save({str(tmp_path)!r}, 10, lambda f: f.write(b'x'))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    checkpoint.path_for(tmp_path, 5).write_bytes(b"foreign")
    for step in (20, 30):
        checkpoint.save(tmp_path, step, write_obj(step), keep_last=1)
    assert [checkpoint.step_of(p) for p in checkpoint.all_checkpoints(tmp_path)] == [5, 30]


def test_damaged_manifest_claims_nothing(tmp_path):
    """Unreadable bookkeeping errs towards keeping files, never towards deleting them."""
    checkpoint.save(tmp_path, 10, write_obj(10))
    (tmp_path / checkpoint.MANIFEST).write_text("{not json")
    for step in (20, 30, 40):
        checkpoint.save(tmp_path, step, write_obj(step), keep_last=1)
    assert [checkpoint.step_of(p) for p in checkpoint.all_checkpoints(tmp_path)] == [10, 40]


def test_stale_temp_file_is_removed_and_never_read(tmp_path):
    checkpoint.save(tmp_path, 1, write_obj("good"))
    stale = tmp_path / ".tmp-x.ckpt"
    stale.write_bytes(b"half a checkpoint")
    other = [tmp_path / ".tmp-x.txt", tmp_path / "tmp-x.ckpt", tmp_path / "notes.ckpt"]  # not ours: kept
    for path in other:
        path.write_text("keep me")
    assert checkpoint.latest(tmp_path).name == "step_000000001.ckpt"
    assert checkpoint.prepare_dir(tmp_path) == [stale]
    assert not stale.exists() and all(p.exists() for p in other)
    assert checkpoint.prepare_dir(tmp_path / "missing") == []
    assert not (tmp_path / "missing").exists()


def test_check_dir_accepts_a_writable_or_creatable_directory(tmp_path):
    checkpoint.check_dir(tmp_path)
    checkpoint.check_dir(tmp_path / "not" / "yet")
    assert os.listdir(tmp_path) == []  # the check creates nothing


def test_check_dir_refuses_a_file(tmp_path):
    file = tmp_path / "ckpt"
    file.write_text("")
    with pytest.raises(ConfigError, match=r"checkpoint.dir=.*/ckpt is a file, not a directory; point"):
        checkpoint.check_dir(file)
    with pytest.raises(ConfigError, match=r"/ckpt/sub cannot be created because .*/ckpt is a file"):
        checkpoint.check_dir(file / "sub")


def test_check_dir_refuses_a_read_only_directory(tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o500)
    try:
        try:
            (read_only / "probe").touch()
        except PermissionError:
            pass
        else:  # root (CAP_DAC_OVERRIDE) writes through permission bits; test_check_dir_refuses_a_file still runs
            pytest.skip("this user can write into a 0o500 directory (root), so it is writable")
        with pytest.raises(ConfigError, match=r"checkpoint.dir=.*/ro is not writable by this user"):
            checkpoint.check_dir(read_only)
        with pytest.raises(ConfigError, match=r"/ro/new cannot be created: .*/ro is not writable"):
            checkpoint.check_dir(read_only / "new")
    finally:
        read_only.chmod(0o700)


def test_the_manifest_keeps_the_size_of_the_job_that_wrote_the_checkpoints(tmp_path):
    assert checkpoint.written_size(tmp_path) is None
    for step in (10, 20, 30):  # retention rewrites the manifest: the size stays
        checkpoint.save(tmp_path, step, write_obj(step), keep_last=1, size={"processes": 2, "replicas": 2})
    assert checkpoint.written_size(tmp_path) == {"processes": 2, "replicas": 2}
    checkpoint.save(tmp_path, 40, write_obj(40), keep_last=1, size={"processes": 1, "replicas": 1})
    assert checkpoint.written_size(tmp_path) == {"processes": 1, "replicas": 1}
    assert [checkpoint.step_of(p) for p in checkpoint.all_checkpoints(tmp_path)] == [40]


def test_a_resume_on_another_number_of_processes_is_refused_before_anything_starts(tmp_path):
    from types import SimpleNamespace

    from scaletrain.driver import preflight

    checkpoint.save(tmp_path, 10, write_obj(10), size={"processes": 2, "replicas": 2})
    job = SimpleNamespace(resume=True, checkpoint=SimpleNamespace(dir=str(tmp_path)))
    preflight.resume_size(job, SimpleNamespace(world_size=2))  # the same size: fine
    with pytest.raises(
        ConfigError, match=r"resume=true on 1 process\(es\), but the checkpoint in .* was written by 2; "
    ):
        preflight.resume_size(job, SimpleNamespace(world_size=1))
    preflight.resume_size(SimpleNamespace(resume=False, checkpoint=job.checkpoint), SimpleNamespace(world_size=1))
