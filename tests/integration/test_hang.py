"""The hang watchdog with real frozen ranks (SIGSTOP) under the local launcher, a real Ray cluster and the real
SLURM cluster: it names the frozen rank, with its host, pid and stack, ends the job with exit 3, leaves nothing
running, and a restart finishes the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import beacon_path, child_env, scaletrain_argv
from job_args import ENDLESS, LONGER, SYNTHETIC_DDP
from slurm_jobs import wait_gone

pytestmark = pytest.mark.slow

HANG_TIMEOUT_S = 6  # short, so each frozen-rank test waits little; a running job makes a step every few ms
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


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run's summary that both restart tests (local, SLURM) must end with: run once."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    done = subprocess.run(scaletrain_argv(run_dir, "+strategy=ddp", *JOB, *LONGER), capture_output=True, text=True,
                          env=child_env(), timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((run_dir / "summary.json").read_text())


def _assert_uninterrupted_result(run_dir: Path, reference: dict) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attempt"] == 1 and summary["steps"] == reference["steps"]
    assert summary["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-6, abs=1e-7)
    assert summary["replica_fingerprints"] == pytest.approx(reference["replica_fingerprints"], rel=1e-6)


def test_hang_then_restart_finishes_with_the_uninterrupted_result(tmp_path: Path, reference: dict) -> None:
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
    _assert_uninterrupted_result(run_dir, reference)


def test_undisturbed_run_reports_no_hang(scaletrain) -> None:
    run = scaletrain("+strategy=ddp", *JOB)
    assert run.returncode == 0, run.output
    assert "hang:" not in run.output and not (run.dir / "hang_report.json").exists()
    beacons = sorted(p.name for p in beacon_path(run.dir, 0).parent.glob("rank_*.json"))
    assert beacons == ["rank_0.json", "rank_1.json"]
    final = json.loads(beacon_path(run.dir, 1).read_text())
    assert final["phase"] == "done" and final["step"] == run.summary["steps"]


CLUSTERS = [
    pytest.param(("launcher=ray", "launcher.nproc=2"), id="ray", marks=pytest.mark.ray),
    pytest.param(("launcher=slurm", "launcher.nodes=2"), id="slurm", marks=pytest.mark.slurm),
]


def _beacon_of(run_dir: Path, rank: int, proc: subprocess.Popen, timeout_s: float = 120) -> dict:
    """The rank's beacon once it trained a few steps (under Ray the beacons stay on the nodes: ray_ranks.json)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        beacon = beacon_path(run_dir, rank)
        if beacon.exists() and json.loads(beacon.read_text()).get("step", 0) >= 20:
            return json.loads(beacon.read_text())
        placed = run_dir / "ray_ranks.json"
        steps = [json.loads(line)["step"] for line in _lines(run_dir / "metrics.jsonl")]
        if placed.exists() and steps and max(steps) >= 20:
            (found,) = [r for r in json.loads(placed.read_text()) if r["rank"] == rank]
            return {"pid": found["pid"], "host": os.uname().nodename}
        assert proc.poll() in (None, 0), proc.stdout.read()  # the SLURM submission itself returns at once
        time.sleep(0.2)
    raise AssertionError(f"rank {rank} did not reach step 20 in {timeout_s} s")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("cluster", CLUSTERS)
def test_frozen_rank_on_a_cluster_is_named_with_its_host_pid_and_stack(
    tmp_path: Path, request: pytest.FixtureRequest, cluster: tuple[str, ...], strategy: tuple[str, ...]
) -> None:
    if cluster[0] == "launcher=ray":  # on the session's Ray cluster
        cluster = (*cluster, f"launcher.address={request.getfixturevalue('local_ray_cluster').address}")
    run_dir = tmp_path / "run"
    proc = _start(run_dir, *strategy, *SYNTHETIC_DDP[1:], f"watchdog.hang_timeout_s={HANG_TIMEOUT_S}", *cluster,
                  *ENDLESS)  # fmt: skip
    try:
        frozen = _beacon_of(run_dir, 1, proc)
        os.kill(frozen["pid"], signal.SIGSTOP)
        frozen_at = time.monotonic()
        output, _ = proc.communicate(timeout=HANG_TIMEOUT_S + 60)
        if cluster[0] == "launcher=slurm":
            job_id = (run_dir / "slurm_job_id").read_text().strip()
            wait_gone(job_id, timeout=HANG_TIMEOUT_S + 60)
            output = (run_dir / f"slurm-{job_id}.out").read_text()
            assert "the job step failed with exit code 3" in output, output
        else:
            assert proc.returncode == 3, output
    finally:
        proc.kill()
    assert time.monotonic() - frozen_at < HANG_TIMEOUT_S + 30, output
    sentences = [line for line in output.splitlines() if "wait for rank 1 on" in line]
    assert sentences and f"rank 1 on {frozen['host']} (pid {frozen['pid']}, step " in sentences[0], output
    assert "rank 0 on" not in sentences[0] and "stopped" in sentences[0]
    report = json.loads((run_dir / "hang_report.json").read_text())
    assert report["culprits"] == [1] and report["why"] == "stopped"
    assert "File " in report["stacks"]["1"], report["stacks"]  # the frozen rank's own stack
    if strategy == ("+strategy=ddp",):  # under mirrored TensorFlow's heartbeat fails rank 0 in about as long
        assert "File " in report["stacks"]["0"], report["stacks"]
    deadline = time.monotonic() + 10  # nothing left running (the cluster reaps its processes within seconds)
    while Path(f"/proc/{frozen['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (
        not Path(f"/proc/{frozen['pid']}").exists()
        or "zombie" in Path(f"/proc/{frozen['pid']}/status").read_text().lower()
    )


@pytest.mark.slurm
def test_slurm_hang_then_restart_in_the_allocation_finishes_with_the_uninterrupted_result(
    tmp_path: Path, reference: dict
) -> None:
    run_dir = tmp_path / "restarted"
    proc = _start(run_dir, "+strategy=ddp", *SYNTHETIC_DDP[1:], f"watchdog.hang_timeout_s={HANG_TIMEOUT_S}",
                  "launcher=slurm", "launcher.nodes=2", *LONGER, "max_restarts=1")  # fmt: skip
    try:
        os.kill(_beacon_of(run_dir, 1, proc)["pid"], signal.SIGSTOP)
        proc.communicate(timeout=60)
        job_id = (run_dir / "slurm_job_id").read_text().strip()
        wait_gone(job_id, timeout=HANG_TIMEOUT_S + 180)
    finally:
        proc.kill()
    log = (run_dir / f"slurm-{job_id}.out").read_text()
    assert "wait for rank 1 on" in log and "restarting them from the last checkpoint (restart 1 of 1)" in log, log
    _assert_uninterrupted_result(run_dir, reference)


def test_frozen_rank_of_an_unmodified_script_is_named_with_its_stack(tmp_path: Path) -> None:
    """A script marks no steps: when its peer's collective times out, the frozen rank is still named, with its stack."""
    run_dir = tmp_path / "run"
    script = Path(__file__).parent / "userland" / "looping_script.py"
    proc = _start(run_dir, "launcher.nproc_per_node=2", f"script={script}", "script_args=[5]")
    try:
        # Frozen in its loop of collectives, not still importing torch (a stack that deep is cut after 100 frames,
        # before the script's own): rank 1 has printed its first step.
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "[rank 1]" in line and "step 0" in line:
                break
        assert proc.poll() is None, "".join(seen)
        frozen = json.loads(beacon_path(run_dir, 1).read_text())
        os.kill(frozen["pid"], signal.SIGSTOP)
        rest, _ = proc.communicate(timeout=60)
        output = "".join(seen) + rest
    finally:
        proc.kill()
    assert proc.returncode == 3, output
    assert f"wait for rank 1 on {frozen['host']} (pid {frozen['pid']}, step 0, phase script, stopped)" in output
    report = json.loads((run_dir / "hang_report.json").read_text())
    assert report["culprits"] == [1] and "looping_script.py" in report["stacks"]["1"], report["stacks"]
