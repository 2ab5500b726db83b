"""contract/atomic.py: the one atomic write every file other processes read goes through."""

from __future__ import annotations

import os
import stat

import pytest

from scaletrain.contract import atomic


def test_a_write_replaces_the_file_whole_with_the_umasks_mode(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")
    previous = os.umask(0o022)
    try:
        assert atomic.write(path, "new\n") == path
    finally:
        os.umask(previous)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # as a plain open would make it, not mkstemp's 0600
    assert atomic.write(path, b"\x00\x01").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "job.json"
    path.write_text("the last good one")
    with pytest.raises(RuntimeError, match="crashed mid-write"), atomic.replacing(path) as f:
        f.write("half a fi")
        raise RuntimeError("crashed mid-write")
    assert path.read_text() == "the last good one"
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]


def test_a_durable_write_is_on_disk_under_its_name(tmp_path):
    path = atomic.write(tmp_path / "manifest.json", '{"written": []}\n', durable=True)
    assert path.read_text() == '{"written": []}\n'
