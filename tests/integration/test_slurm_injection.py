"""Injection payloads through the real CLI (``launcher=slurm launcher.dry_run=true``), no SLURM cluster needed.

Fields that may hold odd characters (the run directory, overrides such as checkpoint.dir) are written quoted: the
rendered script is then run by real bash with recording stand-ins for srun/scontrol/sbatch/sinfo, and nothing
injected may run while every task gets the job file, which holds each value verbatim. Fields that sbatch could not
read back from an ``#SBATCH`` line are refused: exit 2, one ``scaletrain: error:`` line, no script written.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import child_env, scaletrain_argv

# Payloads use both PATH commands (touch) and builtins with redirections (`:`, echo), which run whatever PATH is.
PAYLOAD = "$(touch pwned1) `touch pwned2`; touch pwned3 && echo > pwned4 | $(: > pwned5) #x %j"
RECORDER = """#!/bin/bash
printf '%s\\0' "$@" > "$RECORD_DIR/$(basename "$0")_argv"
"""


def _stubs(tmp_path: Path) -> Path:
    """srun, scontrol, sbatch and sinfo that only record their argv (NUL-separated) under tmp_path/record."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    for name in ("srun", "scontrol", "sbatch", "sinfo"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _dry_run(tmp_path: Path, run_dir: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    """``python -m scaletrain launcher=slurm launcher.dry_run=true ...`` with the stand-ins first on PATH."""
    env = child_env({"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "RECORD_DIR": str(tmp_path / "record")})
    argv = scaletrain_argv(Path("unused"), "launcher=slurm", "+strategy=ddp", *overrides, "launcher.dry_run=true")
    argv[argv.index("hydra.run.dir=unused")] = f"hydra.run.dir='{run_dir}'"  # quoted for Hydra's grammar
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def _recorded(tmp_path: Path, name: str) -> list[str] | None:
    path = tmp_path / "record" / f"{name}_argv"
    return path.read_bytes().decode().split("\0")[:-1] if path.exists() else None


def _pwned(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("pwned*") if p.name.startswith("pwned")]


def test_quoted_fields_reach_srun_verbatim_and_nothing_injected_runs(tmp_path: Path) -> None:
    _stubs(tmp_path)
    run_dir = tmp_path / f"run {PAYLOAD}"
    checkpoints = f"checkpoint.dir='{tmp_path}/ck {PAYLOAD}'"
    done = _dry_run(tmp_path, str(run_dir), "launcher.job_name='job $(touch pwned6)'", checkpoints)
    assert done.returncode == 0, done.stdout + done.stderr
    script = run_dir / "submit.sbatch"
    assert script.read_text() in done.stdout
    assert _recorded(tmp_path, "sbatch") is None and _recorded(tmp_path, "sinfo") is None  # a dry run asks nothing

    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "RECORD_DIR": str(tmp_path / "record"), "SLURM_JOB_ID": "42"}
    ran = subprocess.run(
        ["/bin/bash", str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=30,
        env={**env, "SCALETRAIN_PYTHON": "/opt/py/bin/python"},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert _pwned(tmp_path) == []
    assert _recorded(tmp_path, "srun") == [
        "--kill-on-bad-exit=1",
        "/opt/py/bin/python",
        "-m",
        "scaletrain.rank.slurm_rank",
        f"{run_dir}/job.json",
    ]
    job = json.loads((run_dir / "job.json").read_text())  # what every task runs: each value exactly as given
    assert job["launcher"]["job_name"] == "job $(touch pwned6)"
    assert job["checkpoint"]["dir"] == f"{tmp_path}/ck {PAYLOAD}" and job["output_dir"] == str(run_dir)


REFUSED = {
    "job name with a newline": ("launcher.job_name='x\ntouch pwned'", "launcher.job_name='x\\ntouch pwned'"),
    "job name with a carriage return": ("launcher.job_name='x\rtouch pwned'", "launcher.job_name='x\\rtouch pwned'"),
    "job name starting with '-'": ("launcher.job_name=-x", "launcher.job_name='-x' cannot go on"),
    "partition with a command": ("launcher.partition='gpu; touch pwned'", "launcher.partition='gpu; touch pwned'"),
    "account with a substitution": ("launcher.account='$(touch pwned)'", "launcher.account='$(touch pwned)'"),
    "qos with backticks": ("launcher.qos='`touch pwned`'", "launcher.qos='`touch pwned`'"),
    "sbatch_args with a newline": (
        "launcher.sbatch_args=['--constraint=a\ntouch pwned']",
        "launcher.sbatch_args item '--constraint=a\\ntouch pwned'",
    ),
    "run dir with a newline": ("RUN_DIR=\ntouch pwned", "the run directory '"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_fields_no_sbatch_line_can_carry_are_refused_before_writing_a_script(tmp_path: Path, case: str) -> None:
    _stubs(tmp_path)
    override, named = REFUSED[case]
    run_dir = tmp_path / "run"
    if override.startswith("RUN_DIR="):
        run_dir, override = tmp_path / f"run{override.removeprefix('RUN_DIR=')}", "launcher.nodes=1"
    done = _dry_run(tmp_path, str(run_dir), override)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if "scaletrain: error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"scaletrain: error: {named}"), done.stderr
    assert "cannot go on" in errors[0] and "Traceback" not in done.stderr
    assert "#!/bin/bash" not in done.stdout
    assert not (run_dir / "submit.sbatch").exists() and not (run_dir / "job.json").exists()
    assert _recorded(tmp_path, "sbatch") is None
    assert _pwned(tmp_path) == []
