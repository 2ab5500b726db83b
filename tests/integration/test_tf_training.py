"""Real TensorFlow training through the real CLI: user code, TF_CONFIG scripts and the PyTorch-vs-TensorFlow
head-to-head. Each test starts TensorFlow in fresh processes (seconds each); what MirroredStrategy and
MultiWorkerMirroredStrategy learn, log and resume is the parity matrix's (test_parity.py)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

pytestmark = [pytest.mark.tf, pytest.mark.slow]

USERLAND = Path(__file__).parent / "userland"


def test_head_to_head_trains_both_frameworks_and_writes_the_table(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "scaletrain", "-m", f"hydra.sweep.dir={sweep}", "+strategy=ddp,mirrored"]
        + ["workload=digits_cnn", "launcher.nproc_per_node=1"],
        capture_output=True,
        text=True,
        timeout=400,
        env=child_env(),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {row["framework"]: row for row in csv.DictReader((sweep / "comparison.csv").open())}
    assert set(rows) == {"torch", "tensorflow"}
    torch_acc, tf_acc = float(rows["torch"]["val_accuracy"]), float(rows["tensorflow"]["val_accuracy"])
    assert tf_acc >= 0.9 and torch_acc >= 0.9
    assert abs(torch_acc - tf_acc) <= 0.03
    for row in rows.values():
        assert float(row["epoch_time_s"]) > 0 and float(row["samples_per_s"]) > 0 and float(row["peak_rss_mib"]) > 50
    table = (sweep / "comparison.md").read_text()
    assert "| +strategy=mirrored | tensorflow | mirrored" in table
    assert table.splitlines()[2] in proc.stdout  # printed at the end


def test_user_tf_function_gets_the_strategy_and_averaged_gradients(scaletrain):
    run = scaletrain(
        "+strategy=mirrored",
        "strategy.cpu_devices=2",
        "workload=function",
        "workload.fn._target_=tf_user_train.main",
        "+workload.fn.steps=30",
        env={"PYTHONPATH": os.pathsep.join(filter(None, [str(USERLAND), os.environ.get("PYTHONPATH")]))},
    )
    assert run.returncode == 0, run.output
    summary = run.summary
    assert summary["replicas_seen"] == 2 and summary["rank_seen"] == 0
    assert summary["weight"] == pytest.approx(3.0 * (1 - 0.8**30), rel=1e-5)  # the mean gradient, not the sum
    assert [m["step"] for m in run.metrics] == list(range(1, 31))
    assert (run.dir / "checkpoints" / "step_000000030.ckpt").is_file()


def test_unmodified_tf_config_script_gets_every_worker(scaletrain, tmp_path):
    out = tmp_path / "script_out"
    out.mkdir()
    run = scaletrain(
        "+strategy=mirrored",
        "launcher.nproc_per_node=2",
        f"script={USERLAND / 'tf_config_script.py'}",
        f"script_args=[{out},--lr,0.5]",
    )
    assert run.returncode == 0, run.output
    records = [json.loads((out / f"worker{i}.json").read_text()) for i in range(2)]
    workers = records[0]["TF_CONFIG"]["cluster"]["worker"]
    assert len(set(workers)) == 2
    for index, record in enumerate(records):
        assert record["TF_CONFIG"] == {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        assert record["replicas"] == 2 and record["sum"] == 3.0  # 1 + 2: the collective really formed
        assert record["argv"] == ["--lr", "0.5"]
