"""Helpers for tests against the local SLURM cluster (slurm/local-cluster.sh): run commands, follow jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import SLURM_NODES

REPO = Path(__file__).resolve().parents[2]


def run(
    *cmd: str, timeout: float = 30, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=cwd)


def node_states() -> dict[str, str]:
    """Node name -> compact state (``idle``, ``alloc``, ``down*``, ...) of the responding nodes."""
    out = run("sinfo", "-h", "-N", "-r", "-o", "%N %t", timeout=15)
    out.check_returncode()
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


def wait_idle(timeout: float = 60) -> dict[str, str]:
    """Jobs from earlier tests may still be completing; give the nodes a moment."""
    deadline = time.monotonic() + timeout
    states = node_states()
    while not all(states.get(n) == "idle" for n in SLURM_NODES) and time.monotonic() < deadline:
        time.sleep(0.5)
        states = node_states()
    return states


def job_state(job_id: str) -> str:
    out = run("scontrol", "show", "job", job_id)
    for field in out.stdout.split():
        if field.startswith("JobState="):
            return field.split("=", 1)[1]
    return ""


def wait_gone(job_id: str, timeout: float = 180) -> None:
    """Until the job has left squeue (requeues included); cancel it and fail if it takes longer."""
    deadline = time.monotonic() + timeout
    while run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip():
        if time.monotonic() > deadline:
            run("scancel", job_id)
            raise AssertionError(f"job {job_id} still queued after {timeout} s (cancelled)")
        time.sleep(0.5)


def sacct_history(job_id: str, timeout: float = 30) -> list[tuple[str, str]]:
    """(State, ExitCode) of every run of the job, requeued runs included (sacct -D), once the last is final."""
    deadline = time.monotonic() + timeout
    while True:
        out = run("sacct", "-j", job_id, "-X", "-D", "-n", "-P", "-o", "State,ExitCode")
        rows = [tuple(line.split("|")) for line in out.stdout.strip().splitlines() if line]
        final = rows and rows[-1][0] not in ("RUNNING", "PENDING", "REQUEUED", "COMPLETING")
        if final or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def accounting_enabled() -> bool:
    return "accounting_storage/slurmdbd" in run("scontrol", "show", "config").stdout


def submitted_with_name(name: str) -> list[str]:
    """Job ids squeue or sacct know under this job name (sacct: the last day)."""
    queued = run("squeue", "-h", "-n", name, "-o", "%i").stdout.split()
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 86400))
    known = run("sacct", "-X", "-n", "-P", "--name", name, "-S", since, "-o", "JobID").stdout.split()
    return queued + known


def wait_for_step(metrics: Path, step: int, timeout: float = 120) -> None:
    """Until rank 0 has logged ``step`` (or later) in metrics.jsonl."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists():
            steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.strip()]
            if steps and max(steps) >= step:
                return
        time.sleep(0.2)
    raise AssertionError(f"step {step} not logged in {metrics} within {timeout} s")


# Writes this process's SLURM variables to <argv[1]>.json, or <argv[1]><SLURM_PROCID>.json for a task.
_DUMP = (
    "import json, os, sys; e = {k: v for k, v in os.environ.items() if k.startswith(('SLURM', 'HOSTNAME'))}; "
    "suffix = e['SLURM_PROCID'] if 'SLURM_STEP_ID' in e else ''; "
    "open(sys.argv[1] + suffix + '.json', 'w').write(json.dumps(e))"
)


def capture_envs(workdir: Path, nodes: int, tasks_per_node: int) -> tuple[dict, list[dict]]:
    """The SLURM variables of a real job's batch shell and of each task of one srun step, by SLURM_PROCID."""
    script = workdir / "dump_env.sh"
    script.write_text('#!/bin/bash\n"$DUMP_PYTHON" -c "$DUMP" batch\nsrun "$DUMP_PYTHON" -c "$DUMP" task\n')
    env = {**os.environ, "DUMP_PYTHON": sys.executable, "DUMP": _DUMP}
    done = run(
        "sbatch", "--parsable", f"--nodes={nodes}", f"--ntasks-per-node={tasks_per_node}", "--job-name=dump-env",
        f"--chdir={workdir}", f"--output={workdir / 'dump.out'}", str(script), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_gone(done.stdout.strip().split(";")[0], timeout=60)
    batch = json.loads((workdir / "batch.json").read_text())
    tasks = [json.loads((workdir / f"task{rank}.json").read_text()) for rank in range(nodes * tasks_per_node)]
    return batch, tasks


def save_fixtures(directory: Path) -> None:
    """Capture a 2x1 and a 2x2 job's variables into ``directory`` (tests/unit/fixtures/slurm/).

    PYTHONPATH=src:tests python tests/integration/slurm_jobs.py tests/unit/fixtures/slurm
    """
    directory.mkdir(parents=True, exist_ok=True)
    for nodes, per_node in ((2, 1), (2, 2)):
        with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
            batch, tasks = capture_envs(Path(tmp), nodes, per_node)
        shape = f"{nodes}x{per_node}"
        (directory / f"batch_{shape}.json").write_text(json.dumps(batch, indent=2, sort_keys=True) + "\n")
        for task in tasks:
            name = f"srun_{shape}_task{task['SLURM_PROCID']}.json"
            (directory / name).write_text(json.dumps(task, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    save_fixtures(Path(sys.argv[1]))
