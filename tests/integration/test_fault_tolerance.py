"""Supervision with real processes: a killed rank stops the job, restarts resume, Ctrl-C stops every rank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import child_env, scaletrain_argv
from job_args import ENDLESS, LONGER, SYNTHETIC_DDP

pytestmark = pytest.mark.slow

# 128 steps of a few ms each on two local ranks; tests that only interrupt the job add ENDLESS.
WORKLOAD = (*SYNTHETIC_DDP, "launcher.nproc_per_node=2")


def _rank_pids(launcher_pid: int) -> dict[int, int]:
    """RANK -> pid of the launcher's worker processes, read from /proc."""
    ranks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != launcher_pid:
                continue
            env = dict(item.split("=", 1) for item in (entry / "environ").read_text().split("\0") if "=" in item)
        except (OSError, ValueError):
            continue
        if "RANK" in env:
            ranks[int(env["RANK"])] = int(entry.name)
    return ranks


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the job ended before it could be interrupted"
        if metrics.exists():
            steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.strip()]
            if steps and max(steps) >= step:
                return
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        scaletrain_argv(run_dir, *WORKLOAD, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
    )


def _kill_rank(proc: subprocess.Popen, rank: int) -> None:
    deadline = time.monotonic() + 10
    while rank not in (pids := _rank_pids(proc.pid)):
        assert time.monotonic() < deadline, "rank processes not found"
        time.sleep(0.05)
    os.kill(pids[rank], signal.SIGKILL)


def test_killed_rank_ends_the_job_within_seconds_naming_it(tmp_path):
    proc = _start(tmp_path / "run", *ENDLESS)
    _wait_for_step(tmp_path / "run", 25, proc)
    _kill_rank(proc, 1)
    killed_at = time.monotonic()
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - killed_at < 10
    assert proc.returncode not in (0, None)
    assert "rank 1 was killed by signal SIGKILL" in out
    assert not _rank_pids(proc.pid)


def test_restart_resumes_from_checkpoint_with_the_uninterrupted_result(tmp_path, scaletrain):
    reference = scaletrain(*WORKLOAD, *LONGER)
    assert reference.returncode == 0, reference.output

    run_dir = tmp_path / "restarted"
    proc = _start(run_dir, *LONGER, "max_restarts=1")
    _wait_for_step(run_dir, 45, proc)
    _kill_rank(proc, 1)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert "restarting all ranks from the last checkpoint (restart 1 of 1)" in out
    resumed = [line for line in out.splitlines() if "resumed from" in line]
    assert resumed and "(step 0)" not in resumed[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attempt"] == 1
    assert summary["steps"] == reference.summary["steps"]
    assert summary["final_loss"] == pytest.approx(reference.summary["final_loss"], rel=1e-6, abs=1e-7)
    assert summary["replica_fingerprints"] == pytest.approx(reference.summary["replica_fingerprints"], rel=1e-6)
    # Each logged step once: the killed attempt's rows past its last checkpoint gave way to the resumed attempt's.
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [(r["step"], r["attempt"]) for r in rows if "loss" in r]
    assert [step for step, _ in train_rows] == [m["step"] for m in reference.metrics if "loss" in m]
    resumed_step = int(resumed[0].split("(step ")[1].rstrip(")"))
    assert all(attempt == (0 if step <= resumed_step else 1) for step, attempt in train_rows), train_rows


def test_ctrl_c_stops_every_rank(tmp_path):
    proc = _start(tmp_path / "run", *ENDLESS)
    _wait_for_step(tmp_path / "run", 10, proc)
    ranks = _rank_pids(proc.pid)
    assert len(ranks) == 2
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "interrupted: every rank was stopped" in out
    for pid in ranks.values():
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs: room for one checkpoint of SYNTHETIC_DDP's model (about 2 MiB), not for a second."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and the development machines run as root)")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_disk_is_one_sentence_keeps_the_last_checkpoint_and_is_not_restarted(scaletrain, small_disk):
    ckpt = small_disk / "ckpt"
    run = scaletrain(*WORKLOAD, "launcher.nproc_per_node=1", f"checkpoint.dir={ckpt}", "max_restarts=2")
    assert run.returncode == 2, run.output
    errors = [line for line in run.output.splitlines() if "scaletrain: error: the checkpoint of step 40" in line]
    assert errors and errors[0].endswith("then resume with resume=true."), run.output
    assert f"does not fit in {ckpt}: it needs about " in errors[0] and " MiB are free" in errors[0]
    assert "restarting all ranks" not in run.output  # certain to fail again: not retried
    assert sorted(p.name for p in ckpt.iterdir()) == [".scaletrain-checkpoints.json", "step_000000020.ckpt"]
    import torch

    state = torch.load(ckpt / "step_000000020.ckpt", weights_only=True)  # the last good one is whole
    assert state["step"] == 20 and state["model"]


@pytest.mark.parametrize("strategy", [pytest.param("ddp"), pytest.param("mirrored", marks=pytest.mark.tf)])
def test_resume_from_another_models_checkpoint_is_one_sentence(scaletrain, tmp_path, strategy):
    common = (
        f"+strategy={strategy}",
        "workload=synthetic",
        "workload.num_samples=256",
        "workload.depth=1",
        "train.global_batch_size=32",
        "launcher.nproc_per_node=1",
        f"checkpoint.dir={tmp_path / 'ckpt'}",
    )
    first = scaletrain(*common, "workload.width=32", "train.max_steps=4")
    assert first.returncode == 0, first.output
    other = scaletrain(*common, "workload.width=64", "resume=true", "max_restarts=2")
    assert other.returncode == 2, other.output
    errors = [line for line in other.output.splitlines() if line.startswith("[rank 0] scaletrain: error: ")]
    assert len(errors) == 1 and "does not fit this model (" in errors[0], other.output
    assert errors[0].endswith("resume with the workload that wrote it, or point checkpoint.dir elsewhere.")
    assert "restarting all ranks" not in other.output


@pytest.mark.tf
def test_resume_from_another_frameworks_checkpoint_is_one_sentence(scaletrain, tmp_path):
    common = ("workload=linear", "launcher.nproc_per_node=1", f"checkpoint.dir={tmp_path / 'ckpt'}")
    first = scaletrain("+strategy=ddp", *common, "train.max_steps=3")
    assert first.returncode == 0, first.output
    other = scaletrain("+strategy=mirrored", *common, "resume=true")
    assert other.returncode == 2, other.output
    errors = [line for line in other.output.splitlines() if line.startswith("[rank 0] scaletrain: error: ")]
    assert len(errors) == 1 and "cannot be read by +strategy=mirrored" in errors[0], other.output
    assert errors[0].endswith("it was written by another framework or is damaged; resume with the strategy that "
                              "wrote it, or point checkpoint.dir elsewhere.")  # fmt: skip


def test_stale_temp_file_of_a_killed_write_is_removed_at_the_next_start(scaletrain, tmp_path):
    ckpt = tmp_path / "ckpt"
    common = ("+strategy=ddp", "workload=linear", "launcher.nproc_per_node=1", f"checkpoint.dir={ckpt}")
    first = scaletrain(*common, "train.max_steps=30")
    assert first.returncode == 0, first.output
    stale = ckpt / ".tmp-killed.ckpt"  # what a SIGKILL mid-write leaves (tests/unit/test_checkpoint.py makes one)
    stale.write_bytes(b"\0" * 4096)
    resumed = scaletrain(*common, "resume=true")
    assert resumed.returncode == 0, resumed.output
    assert f"removed {stale}, left by a checkpoint write that was killed" in resumed.output
    assert "(step 30)" in resumed.output  # the stale file was never read as a checkpoint
    assert not list(ckpt.glob(".tmp-*"))


def test_resume_on_another_number_of_ranks_is_refused_before_any_rank_starts(scaletrain, tmp_path):
    """Until a checkpoint can be resumed on any size, resuming 2 ranks' checkpoint on 1 is one sentence, exit 2,
    before anything starts (the result would silently differ)."""
    ckpt = tmp_path / "ckpt"
    common = ("+strategy=ddp", "workload=linear", f"checkpoint.dir={ckpt}")
    first = scaletrain(*common, "launcher.nproc_per_node=2", "train.max_steps=30")
    assert first.returncode == 0, first.output
    smaller = scaletrain(*common, "launcher.nproc_per_node=1", "resume=true")
    assert smaller.returncode == 2, smaller.output
    assert (
        f"resume=true on 1 process(es), but the checkpoint in {ckpt} was written by 2; resume with 2" in smaller.stderr
    )
    assert "[rank" not in smaller.output  # no rank started
