"""A TensorFlow worker killed mid-run: the launcher restarts every rank and MultiWorkerMirroredStrategy resumes."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import child_env, scaletrain_argv
from test_fault_tolerance import _kill_rank, _wait_for_step

pytestmark = [pytest.mark.tf, pytest.mark.slow]

EPOCHS = 30  # 23 steps each: long enough to be killed mid-run
WORKLOAD = (
    "+strategy=mirrored",
    "workload=digits",
    "launcher.nproc_per_node=2",
    f"train.epochs={EPOCHS}",
    "train.log_every_n_steps=10",
    "checkpoint.every_n_steps=50",
    "max_restarts=1",
)


def test_killed_tf_worker_resumes_from_checkpoint_and_finishes(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        scaletrain_argv(run_dir, *WORKLOAD),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
    )
    _wait_for_step(run_dir, 120, proc, timeout=180)
    _kill_rank(proc, 1)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "rank 1 was killed by signal SIGKILL" in out
    assert "restarting all ranks from the last checkpoint (restart 1 of 1)" in out
    resumed = [line for line in out.splitlines() if "resumed from" in line]
    assert resumed and "(step 0)" not in resumed[0], out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attempt"] == 1 and summary["world_size"] == 2
    assert summary["steps"] == 23 * EPOCHS
    assert summary["val_accuracy"] >= 0.9  # digits (MLP) under TensorFlow
    assert len(set(summary["replica_fingerprints"])) == 1
