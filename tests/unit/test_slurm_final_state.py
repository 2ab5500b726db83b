"""How launcher=slurm learns how a job ended (slurm_cluster.final_state), with the SLURM commands faked."""

from __future__ import annotations

import subprocess
import time

from scaletrain.driver.launchers import slurm_cluster


def fake(monkeypatch, answers: dict[str, tuple[int, str, str]]) -> list[str]:
    """slurm_cluster._run answering each command (by name) with (returncode, stdout, stderr); returns the calls."""
    calls: list[str] = []

    def run(argv, env=None):
        calls.append(argv[0])
        code, out, err = answers[argv[0]]
        return subprocess.CompletedProcess(argv, code, out, err)

    monkeypatch.setattr(slurm_cluster, "_run", run)
    monkeypatch.setattr(slurm_cluster.shutil, "which", lambda name: f"/usr/bin/{name}")
    return calls


def test_sacct_answers(monkeypatch):
    fake(monkeypatch, {"sacct": (0, "COMPLETED|0:0\n", "")})
    assert slurm_cluster.final_state("7") == ("COMPLETED", "0:0")


def test_without_accounting_scontrol_answers_at_once(monkeypatch):
    """A cluster without accounting (e.g. tests/netns-slurm.sh's): sacct can never know the job, so no settling."""
    calls = fake(
        monkeypatch,
        {
            "sacct": (1, "", "Slurm accounting storage is disabled\n"),
            "scontrol": (0, "JobId=7 JobName=x JobState=COMPLETED Reason=None ExitCode=0:0\n", ""),
        },
    )
    began = time.monotonic()
    assert slurm_cluster.final_state("7", settle_s=30) == ("COMPLETED", "0:0")
    assert time.monotonic() - began < 5 and calls == ["sacct", "scontrol"]
