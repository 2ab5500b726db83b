"""``launcher.dry_run=true`` prints exactly the job it would submit, without a cluster: compared with a golden file.

After an intended change, regenerate the golden file with
``UPDATE_GOLDEN=1 pytest tests/integration/test_slurm_dry_run.py``.
"""

from __future__ import annotations

import json
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


def test_a_sweeps_dry_run_prints_every_point_and_the_analysis_job_and_submits_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "sweep"
    env = child_env({"PATH": "/nonexistent", "WANDB_API_KEY": SECRET})
    argv = scaletrain_argv(run_dir, *OVERRIDES, "launcher.ntasks_per_node=2", "scaling.device_counts=[2,4]")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    scripts = [run_dir / f"devices_{n}" / "submit.sbatch" for n in (1, 2, 4)] + [run_dir / "analyse.sbatch"]
    for script in scripts:  # each written, and printed as written
        assert script.read_text() in done.stdout
    one, two, four, analysis = (s.read_text() for s in scripts)
    assert "--nodes=1\n" in one and "--ntasks-per-node=1\n" in one and "--dependency" not in one
    assert "--nodes=1\n" in two and "--ntasks-per-node=2\n" in two and "afterany:<job id of devices_1>'" in two
    assert "--nodes=2\n" in four and '"++train.global_batch_size=8"' in four and '"++scaling.device_counts=[]"' in four
    assert '"scaling.device_counts=[2,4]"' not in four  # the user's sweep setting gives way to the point's own
    point = json.loads((run_dir / "devices_4" / "job.json").read_text())  # what the point's tasks run
    assert point["train"]["global_batch_size"] == 8 and point["scaling"]["device_counts"] == []
    assert point["output_dir"] == str(run_dir / "devices_4")
    assert '-m scaletrain.driver.scaling "$@"\n' in analysis and f"set -- {run_dir}\n" in analysis
    assert not list(run_dir.rglob("slurm_job_id")) and SECRET not in done.stdout + done.stderr
