"""One live job per run directory, with real jobs: a second job aimed at a directory in use is refused before it
starts anything (exit 2, one sentence naming the holder); a lock left by a killed driver is taken over with a line;
under SLURM the submitted job holds the directory after the submitting process exits, until the scheduler says it
ended."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import child_env, scaletrain_argv
from slurm_jobs import run, wait_gone

from scaletrain.driver.runlock import LOCK_NAME

pytestmark = pytest.mark.slow

LINEAR = ("+strategy=ddp", "workload=linear", "seed=4")
LONG = (*LINEAR, "train.epochs=2000", "train.log_every_n_steps=10")  # runs until the test stops it
SHORT = (*LINEAR, "train.epochs=2")


def _cli(run_dir: Path, *overrides: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = scaletrain_argv(run_dir, *overrides)
    return subprocess.run(argv, capture_output=True, text=True, env=child_env(), timeout=timeout, cwd=run_dir.parent)


def _wait_for(path: Path, proc: subprocess.Popen | None = None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.is_file() and path.read_text().strip()):
        assert proc is None or proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout_s} s"
        time.sleep(0.1)


def _instances(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "beacons").iterdir()) if (run_dir / "beacons").is_dir() else []


def test_a_second_local_job_is_refused_and_a_killed_drivers_lock_is_taken_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = subprocess.Popen(scaletrain_argv(run_dir, *LONG, "launcher.nproc_per_node=2"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=child_env(), cwd=tmp_path)  # fmt: skip
    try:
        _wait_for(run_dir / "metrics.jsonl", first)
        holder = json.loads((run_dir / LOCK_NAME).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        second = _cli(run_dir, *SHORT, "launcher.nproc_per_node=1")
        assert second.returncode == 2, second.stdout + second.stderr
        errors = [line for line in second.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1, second.stderr
        assert f"{run_dir} is in use by a local job, pid {first.pid} on {socket.gethostname()}" in errors[0]
        assert len(_instances(run_dir)) == 1  # the second job started no rank
        assert first.poll() is None  # and the first trains on
    finally:
        first.send_signal(signal.SIGKILL)  # no clean-up at all: its ranks die with it, its lock stays
        first.communicate(timeout=60)
    assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == first.pid
    third = _cli(run_dir, *SHORT, "launcher.nproc_per_node=1")
    assert third.returncode == 0, third.stdout + third.stderr
    taken = f"taking over {run_dir / LOCK_NAME}: its holder ended (pid {first.pid} is gone)"
    assert taken in third.stdout + third.stderr
    assert not (run_dir / LOCK_NAME).exists()  # released on its way out


@pytest.mark.slurm
def test_a_submitted_slurm_job_holds_its_directory_until_it_ended(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    on_slurm = ("launcher=slurm", "launcher.nodes=1")
    submitted = _cli(run_dir, *LONG, *on_slurm)  # returns once submitted
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = (run_dir / "slurm_job_id").read_text().strip()
    try:
        assert json.loads((run_dir / LOCK_NAME).read_text())["slurm_job_ids"] == [job_id]
        second = _cli(run_dir, *SHORT, *on_slurm)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"{run_dir} is in use by SLURM job {job_id} (submitted from " in second.stderr
        assert (run_dir / "slurm_job_id").read_text().strip() == job_id  # nothing was submitted
    finally:
        run("scancel", job_id)
        wait_gone(job_id, timeout=60)
    later = _cli(run_dir, *SHORT, *on_slurm, "launcher.wait=true", timeout=180)
    assert later.returncode == 0, later.stdout + later.stderr
    assert f"its holder ended (SLURM job {job_id} has left the queue)" in later.stdout + later.stderr
    assert json.loads((run_dir / LOCK_NAME).read_text())["slurm_job_ids"] != [job_id]
