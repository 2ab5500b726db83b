"""Checks that the local SLURM cluster from ``slurm/local-cluster.sh`` is real and usable.

These tests need a running cluster (``bash slurm/local-cluster.sh start``, as root on Debian 12); without one
they are skipped (``REQUIREMENTS["slurm"]`` in tests/conftest.py decides).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import SLURM_NODES
from slurm_jobs import accounting_enabled, job_state, run, wait_idle

pytestmark = pytest.mark.slurm


def _sacct_state(job_id: str, timeout: float = 30) -> str:
    """Poll sacct: slurmctld sends the job's end to slurmdbd asynchronously."""
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        out = run("sacct", "-j", job_id, "-X", "-P", "-n", "-o", "State")
        state = out.stdout.strip()
        if state == "COMPLETED" or time.monotonic() >= deadline:
            return state or f"<rc={out.returncode} stderr={out.stderr.strip()!r}>"
        time.sleep(0.5)


def test_sinfo_lists_both_nodes_idle() -> None:
    states = wait_idle()
    assert {n: states.get(n) for n in SLURM_NODES} == {n: "idle" for n in SLURM_NODES}, states


@pytest.fixture(scope="module")
def two_node_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Run one job across both nodes; return its id and output file."""
    wait_idle()
    workdir = tmp_path_factory.mktemp("slurm-job")
    script = workdir / "two_nodes.sh"
    script.write_text("#!/bin/bash\nsrun bash -c 'echo \"$SLURM_NODEID $(hostname)\"'\n")
    out_file = workdir / "job.out"
    proc = run(
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
    assert job_state(job_id) == "COMPLETED"
    lines = sorted(line.split() for line in out_file.read_text().splitlines() if line.strip())
    assert lines == [["0", "n1"], ["1", "n2"]], out_file.read_text()


def test_sacct_reports_completed(two_node_job: tuple[str, Path]) -> None:
    if not accounting_enabled():
        pytest.skip("cluster runs without slurmdbd (SLURM_WITH_DBD=0): sacct is disabled")
    job_id, _ = two_node_job
    assert _sacct_state(job_id) == "COMPLETED"
