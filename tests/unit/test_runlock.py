"""One live job per run directory: who holds it, when a lock is stale, and what a refusal says."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from scaletrain.contract.errors import ConfigError
from scaletrain.driver import run, runlock
from scaletrain.driver.runlock import LOCK_NAME, Holder


def _lock_with(directory: Path, holder: Holder) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    path.write_text(json.dumps(asdict(holder)))
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _never_asked(job_id: str) -> str:
    raise AssertionError(f"squeue asked about {job_id} for a holder that is no SLURM job")


def test_a_second_job_is_refused_naming_the_live_holder_and_the_first_keeps_its_lock(tmp_path):
    first = runlock.acquire([tmp_path / "run"], "local", _never_asked)
    with pytest.raises(ConfigError) as refused:
        runlock.acquire([tmp_path / "run"], "local", _never_asked)
    sentence = str(refused.value)
    assert f"{tmp_path / 'run'} is in use by a local job, pid {os.getpid()} on {socket.gethostname()}" in sentence
    assert "hydra.run.dir=PATH" in sentence and sentence.count(". ") == 0  # one sentence
    assert (tmp_path / "run" / LOCK_NAME).is_file()
    first.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    runlock.acquire([tmp_path / "run"], "local", _never_asked).release()  # free again


def test_a_refusal_on_the_second_directory_gives_back_the_first(tmp_path):
    _lock_with(tmp_path / "ckpt", Holder("elsewhere", 1, time.time(), "ray"))
    with pytest.raises(ConfigError, match=r"in use by a ray job, pid 1 on elsewhere.*delete .*\.scaletrain\.lock"):
        runlock.acquire([tmp_path / "run", tmp_path / "ckpt"], "local", _never_asked)
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over_with_a_line(tmp_path, caplog):
    _lock_with(tmp_path, Holder(socket.gethostname(), _dead_pid(), time.time() - 60, "local"))
    with caplog.at_level(logging.WARNING, logger="scaletrain"):
        lock = runlock.acquire([tmp_path], "local", _never_asked)
    assert lock.holder.pid == os.getpid()
    assert "taking over" in caplog.text and "its holder ended (pid" in caplog.text and "is gone" in caplog.text


def test_a_pid_reused_by_a_younger_process_does_not_hold_the_lock(tmp_path, caplog):
    mine = runlock.process_started_unix_s(os.getpid())
    assert mine is not None and abs(mine - time.time()) < 24 * 3600
    _lock_with(tmp_path, Holder(socket.gethostname(), os.getpid(), mine - 3600, "local"))  # before this process
    with caplog.at_level(logging.WARNING, logger="scaletrain"):
        runlock.acquire([tmp_path], "local", _never_asked)
    assert "is now another process" in caplog.text


def test_an_unreadable_lock_holds_nothing(tmp_path):
    (tmp_path / LOCK_NAME).write_text("{half a reco")
    assert runlock.acquire([tmp_path], "local", _never_asked).holder.pid == os.getpid()


@pytest.mark.parametrize(
    ("state", "held"),
    [("RUNNING", True), ("PENDING", True), ("REQUEUED", True), ("UNKNOWN", True), ("COMPLETED", False),
     ("CANCELLED", False), ("", False)],
)  # fmt: skip
def test_a_submitted_slurm_job_holds_the_directory_until_the_scheduler_says_it_ended(tmp_path, state, held):
    _lock_with(tmp_path, Holder("login-1", 4242, time.time(), "slurm", ("77", "78")))
    asked: list[str] = []

    def squeue(job_id: str) -> str:
        asked.append(job_id)
        return state if job_id == "78" else ""  # 77 (an earlier point) has left the queue

    if held:
        with pytest.raises(ConfigError, match=r"in use by SLURM job 77, 78 \(submitted from login-1 at "):
            runlock.acquire([tmp_path], "slurm", squeue)
    else:
        assert runlock.acquire([tmp_path], "slurm", squeue).holder.pid == os.getpid()
    assert asked == ["77", "78"]


def test_a_lock_handed_to_slurm_jobs_outlives_the_driver_and_release_never_removes_a_lock_taken_over(tmp_path):
    lock = runlock.acquire([tmp_path], "slurm", _never_asked)
    lock.hand_over(["91"])
    lock.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["slurm_job_ids"] == ["91"]
    other = runlock.acquire([tmp_path / "b"], "local", _never_asked)
    _lock_with(tmp_path / "b", replace(other.holder, pid=other.holder.pid + 1))  # someone took it over meanwhile
    other.release()
    assert (tmp_path / "b" / LOCK_NAME).is_file()


def test_a_job_holds_its_checkpoint_directory_too_when_it_lies_elsewhere(tmp_path):
    from scaletrain.contract.config import Job

    inside = Job(strategy=None, launcher=None, workload=None, output_dir=str(tmp_path / "run"))
    assert run.job_dirs(inside) == [(tmp_path / "run").resolve()]
    elsewhere = replace(inside, checkpoint=replace(inside.checkpoint, dir=str(tmp_path / "shared" / "ckpt")))
    assert run.job_dirs(elsewhere) == [(tmp_path / "run").resolve(), (tmp_path / "shared" / "ckpt").resolve()]
