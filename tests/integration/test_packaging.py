"""The Hydra configs are found from an installed wheel as from a source checkout; the console script works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, child_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("scaletrain-*.whl")
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    return target


def test_wheel_carries_the_configs(installed_wheel):
    assert (installed_wheel / "scaletrain" / "conf" / "config.yaml").is_file()
    assert (installed_wheel / "scaletrain" / "conf" / "strategy" / "ddp.yaml").is_file()


def test_job_runs_from_the_installed_wheel(installed_wheel, tmp_path):
    env = child_env({"PYTHONPATH": str(installed_wheel)})
    where = subprocess.run(
        [sys.executable, "-c", "import scaletrain, sys; print(scaletrain.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert where.stdout.startswith(str(installed_wheel))  # not the source checkout
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaletrain",
            f"hydra.run.dir={tmp_path / 'run'}",
            "+strategy=ddp",
            "launcher.nproc_per_node=1",
            "train.epochs=3",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "run" / "summary.json").is_file()


def test_console_script_shows_the_config_groups():
    exe = shutil.which("scaletrain", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    assert exe is not None, "the scaletrain console script is not installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "strategy: ddp" in out and "launcher: local" in out and "workload: charlm, cifar10, custom, digits" in out
