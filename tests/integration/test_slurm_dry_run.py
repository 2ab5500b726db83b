"""``launcher.dry_run=true`` prints exactly the job it would submit, without a cluster: compared with a golden file.

After an intended change, regenerate the golden file with
``UPDATE_GOLDEN=1 pytest tests/integration/test_slurm_dry_run.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import child_env, scaletrain_argv

GOLDEN = Path(__file__).parent / "golden" / "slurm_dry_run.txt"
SECRET = "wandb-secret-0123456789abcdef"
OVERRIDES = (
    "launcher=slurm",
    "launcher.nodes=2",
    "launcher.time_min=90",
    "launcher.partition=debug",
    "+strategy=ddp",
    "workload=linear",
    "train.lr=0.05",
    'checkpoint.dir="it\'s $(touch pwned) `touch pwned2`; echo"',
    "launcher.dry_run=true",
)


def test_dry_run_prints_the_golden_script_and_submits_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # No SLURM command on PATH: a dry run must not need, or call, any of them.
    env = child_env({"PATH": "/nonexistent", "WANDB_API_KEY": SECRET})
    env.pop("SCALETRAIN_PYTHON", None)
    done = subprocess.run(
        scaletrain_argv(run_dir, *OVERRIDES), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout.replace(str(run_dir), "<RUN_DIR>").replace(sys.executable, "<PYTHON>")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(output)
    assert output == GOLDEN.read_text()
    script = (run_dir / "submit.sbatch").read_text()
    assert script in done.stdout  # the file written is exactly what was printed
    assert SECRET not in done.stdout + done.stderr + script
    assert not (run_dir / "slurm_job_id").exists()
    assert not list(tmp_path.glob("pwned*"))
