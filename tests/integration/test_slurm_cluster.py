"""Checks that the local SLURM cluster from ``slurm/local-cluster.sh`` is real and usable.

These tests need a running cluster (``bash slurm/local-cluster.sh start``, as root on Debian 12).
Without one, the whole module is skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

NODES = ("n1", "n2")
SKIP_REASON = "no SLURM cluster: run 'bash slurm/local-cluster.sh start' first (needs root and Debian's slurm packages)"


def _run(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _node_states() -> dict[str, str]:
    """Node name -> compact state (``idle``, ``alloc``, ``down*``, ...) of the responding nodes."""
    out = _run("sinfo", "-h", "-N", "-r", "-o", "%N %t", timeout=15)
    out.check_returncode()
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    """Skip the module unless sinfo exists and the controller answers with nodes n1 and n2."""
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        pytest.skip(SKIP_REASON)
    try:
        # `scontrol ping` answers at once; sinfo retries for about 9 s when no controller is up
        ping = _run("scontrol", "ping", timeout=15)
        if ping.returncode != 0 or " is UP" not in ping.stdout:
            pytest.skip(SKIP_REASON)
        states = _node_states()
    except (subprocess.SubprocessError, OSError):
        pytest.skip(SKIP_REASON)
    if not set(NODES) <= set(states):
        pytest.skip(SKIP_REASON)


def _wait_idle(timeout: float = 30) -> dict[str, str]:
    """Jobs from earlier tests may still be completing; give the nodes a moment."""
    deadline = time.monotonic() + timeout
    states = _node_states()
    while not all(states.get(n) == "idle" for n in NODES) and time.monotonic() < deadline:
        time.sleep(0.5)
        states = _node_states()
    return states


def _job_state(job_id: str) -> str:
    out = _run("scontrol", "show", "job", job_id)
    for field in out.stdout.split():
        if field.startswith("JobState="):
            return field.split("=", 1)[1]
    return ""


def _sacct_state(job_id: str, timeout: float = 30) -> str:
    """Poll sacct: slurmctld sends the job's end to slurmdbd asynchronously."""
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        out = _run("sacct", "-j", job_id, "-X", "-P", "-n", "-o", "State")
        state = out.stdout.strip()
        if state == "COMPLETED" or time.monotonic() >= deadline:
            return state or f"<rc={out.returncode} stderr={out.stderr.strip()!r}>"
        time.sleep(0.5)


def test_sinfo_lists_both_nodes_idle() -> None:
    states = _wait_idle()
    assert {n: states.get(n) for n in NODES} == {n: "idle" for n in NODES}, states


@pytest.fixture(scope="module")
def two_node_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Run one job across both nodes; return its id and output file."""
    _wait_idle()
    workdir = tmp_path_factory.mktemp("slurm-job")
    script = workdir / "two_nodes.sh"
    script.write_text("#!/bin/bash\nsrun bash -c 'echo \"$SLURM_NODEID $(hostname)\"'\n")
    out_file = workdir / "job.out"
    proc = _run(
        "sbatch",
        "--wait",
        "--parsable",
        "--nodes=2",
        "--ntasks-per-node=1",
        "--time=2",
        f"--chdir={workdir}",
        f"--output={out_file}",
        str(script),
        timeout=120,
    )
    assert proc.returncode == 0, f"sbatch failed: rc={proc.returncode} {proc.stdout} {proc.stderr}"
    job_id = proc.stdout.strip().split(";")[0]
    assert job_id.isdigit(), proc.stdout
    return job_id, out_file


def test_two_node_job_completes_on_n1_and_n2(two_node_job: tuple[str, Path]) -> None:
    job_id, out_file = two_node_job
    assert _job_state(job_id) == "COMPLETED"
    lines = sorted(line.split() for line in out_file.read_text().splitlines() if line.strip())
    assert lines == [["0", "n1"], ["1", "n2"]], out_file.read_text()


def test_sacct_reports_completed(two_node_job: tuple[str, Path]) -> None:
    config = _run("scontrol", "show", "config").stdout
    if "accounting_storage/slurmdbd" not in config:
        pytest.skip("cluster runs without slurmdbd (SLURM_WITH_DBD=0): sacct is disabled")
    job_id, _ = two_node_job
    assert _sacct_state(job_id) == "COMPLETED"
