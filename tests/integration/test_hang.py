"""The hang watchdog with real frozen ranks (SIGSTOP) under the local launcher: it names the frozen rank, with its
host, pid and stack, ends the job with exit 3, leaves nothing running, and a restart finishes the job."""

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

HANG_TIMEOUT_S = 10
STRATEGIES = [pytest.param(("+strategy=ddp",), id="ddp"), pytest.param(("+strategy=mirrored",), id="mirrored",
                                                                       marks=pytest.mark.tf)]  # fmt: skip
JOB = (*SYNTHETIC_DDP[1:], "launcher.nproc_per_node=2", f"watchdog.hang_timeout_s={HANG_TIMEOUT_S}")


def _start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(scaletrain_argv(run_dir, *overrides), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=child_env())  # fmt: skip


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        path = run_dir / "metrics.jsonl"
        if path.exists() and any(json.loads(line)["step"] >= step for line in path.read_text().splitlines() if line):
            return
        time.sleep(0.1)
    raise AssertionError(f"step {step} not reached in {timeout_s} s")


def _rank_pids(launcher_pid: int) -> dict[int, int]:
    ranks = {}
    for pid in map(int, Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        found = [item for item in environ if item.startswith(b"RANK=")]
        if found:
            ranks[int(found[0][5:])] = pid
    return ranks


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_frozen_rank_is_named_with_its_host_pid_and_stack(tmp_path: Path, strategy: tuple[str, ...]) -> None:
    run_dir = tmp_path / "run"
    proc = _start(run_dir, *strategy, *JOB, *ENDLESS)
    try:
        _wait_for_step(run_dir, 20, proc)
        ranks = _rank_pids(proc.pid)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGSTOP)
        frozen_at = time.monotonic()
        output, _ = proc.communicate(timeout=HANG_TIMEOUT_S + 60)
    finally:
        proc.kill()
    assert time.monotonic() - frozen_at < HANG_TIMEOUT_S + 30, output
    assert proc.returncode == 3, output
    sentences = [line for line in output.splitlines() if "hang: no rank advanced for" in line]
    assert sentences, output
    assert f"wait for rank 1 on {os.uname().nodename} (pid {ranks[1]}, step " in sentences[0], sentences[0]
    assert "rank 0 on" not in sentences[0] and "stopped" in sentences[0]
    report = json.loads((run_dir / "hang_report.json").read_text())
    assert report["culprits"] == [1] and report["why"] == "stopped"
    assert set(report["stacks"]) == {"0", "1"}
    assert "File " in report["stacks"]["1"], report["stacks"]  # the frozen rank's own Python stack, all threads
    assert "## Rank 1" in (run_dir / "hang_report.md").read_text()
    for pid in ranks.values():  # nothing left running
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_hang_then_restart_finishes_with_the_uninterrupted_result(tmp_path: Path, scaletrain) -> None:
    reference = scaletrain("+strategy=ddp", *JOB, *LONGER)
    assert reference.returncode == 0, reference.output
    run_dir = tmp_path / "restarted"
    proc = _start(run_dir, "+strategy=ddp", *JOB, *LONGER, "max_restarts=1")
    try:
        _wait_for_step(run_dir, 45, proc)
        os.kill(_rank_pids(proc.pid)[1], signal.SIGSTOP)
        output, _ = proc.communicate(timeout=HANG_TIMEOUT_S + 180)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert "hang: no rank advanced for" in output and "restarting all ranks from the last checkpoint" in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attempt"] == 1 and summary["steps"] == reference.summary["steps"]
    assert summary["final_loss"] == pytest.approx(reference.summary["final_loss"], rel=1e-6, abs=1e-7)
    assert summary["replica_fingerprints"] == pytest.approx(reference.summary["replica_fingerprints"], rel=1e-6)


def test_undisturbed_run_reports_no_hang(scaletrain) -> None:
    run = scaletrain("+strategy=ddp", *JOB)
    assert run.returncode == 0, run.output
    assert "hang:" not in run.output and not (run.dir / "hang_report.json").exists()
    beacons = sorted(p.name for p in (run.dir / "beacons" / "attempt_0").glob("rank_*.json"))
    assert beacons == ["rank_0.json", "rank_1.json"]
    final = json.loads((run.dir / "beacons" / "attempt_0" / "rank_1.json").read_text())
    assert final["phase"] == "done" and final["step"] == run.summary["steps"]
