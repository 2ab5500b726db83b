"""Bad input for +strategy=xla: one sentence and exit 2, before any process starts wherever the driver can tell."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import child_env
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scaletrain.common import hardware
from scaletrain.contract import config

pytestmark = pytest.mark.xla

CASES = {
    # No TPU exists here, so these are the real error paths, not mocks.
    "TPU asked for in the config": (
        ["strategy.device=TPU"],
        {},
        "strategy.device=TPU asks for a Cloud TPU but this host has none",
    ),
    "TPU asked for through PJRT_DEVICE": (
        [],
        {"PJRT_DEVICE": "TPU"},
        "PJRT_DEVICE=TPU asks for a Cloud TPU but this host has none (no TPU PCI device or /dev/accel*); "
        "run on a TPU VM, or unset PJRT_DEVICE.",
    ),
    "mesh shape not matching the device count": (
        ["strategy.num_devices=2", "strategy.mesh_shape=[3]"],
        {},
        "strategy.mesh_shape=[3] spans 3 devices but the job has 2 (strategy.num_devices=2); "
        "give a shape whose sizes multiply to 2, such as [2].",
    ),
    "2-D mesh shape not matching": (
        ["strategy.num_devices=2", "strategy.mesh_shape=[2,2]"],
        {},
        "strategy.mesh_shape=[2, 2] spans 4 devices but the job has 2",
    ),
    "global batch not divisible by the mesh": (
        ["strategy.num_devices=2", "train.global_batch_size=3"],
        {},
        "train.global_batch_size=3 cannot be split evenly over the 2 XLA devices of the mesh; use a multiple of 2",
    ),
    "several processes per host": (
        ["launcher.nproc_per_node=2"],
        {},
        "launcher.nproc_per_node=2 does not fit strategy xla, which runs 1 process(es) per host",
    ),
    "CPU device over several hosts": (
        ["launcher.nnodes=2", "launcher.master_port=29500"],
        {},
        "launcher.nnodes=2 cannot be used with XLA's CPU device, which serves one process only",
    ),
    "sweep on TPU": (
        ["scaling.device_counts=[1,2]"],
        {"PJRT_DEVICE": "TPU"},
        "scaling sweeps with +strategy=xla run on XLA's CPU device only (PJRT_DEVICE=TPU picked TPU, whose runtime "
        "takes every chip of the host); use strategy.device=CPU",
    ),
    "unknown device": (["strategy.device=GPU"], {}, "strategy.device='GPU' is not known; use one of: auto, TPU"),
    "CUDA without GPUs": (["strategy.device=CUDA"], {}, "strategy.device=CUDA needs NVIDIA GPUs"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_xla_bad_input_exits_2_with_one_sentence_and_starts_nothing(scaletrain, case):
    overrides, env, sentence = CASES[case]
    if "TPU" in case and hardware.tpu_chip_count():
        pytest.skip("this host has TPU chips, so asking for a TPU is valid here")
    if case == "CUDA without GPUs" and hardware.gpu_count():
        pytest.skip("this machine has a GPU, so strategy.device=CUDA is a valid choice here")
    _assert_refused(scaletrain("+strategy=xla", *overrides, env=env, timeout=60), sentence)


def test_torch_not_matching_torch_xla_exits_2_with_a_fake_torch_dist_info(scaletrain, tmp_path):
    """A second torch cannot be installed next to the real one here: a dist-info record of torch 2.13.0 placed
    first on the path is what importlib.metadata (and so the pre-flight check) then reports."""
    fake = tmp_path / "site"
    record = fake / "torch-2.13.0.dist-info"
    record.mkdir(parents=True)
    (record / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0\n")
    path = os.pathsep.join(p for p in (str(fake), str(Path(__file__).parents[2] / "src")) if p)
    run = scaletrain("+strategy=xla", env={"PYTHONPATH": path}, timeout=60)
    xla = metadata.version("torch-xla")
    release = ".".join(xla.split(".")[:2])
    _assert_refused(run, f"torch 2.13.0 does not match torch-xla {xla}, which only works with torch {release}; pip")


def _assert_refused(run, sentence: str) -> None:
    assert run.returncode == 2, run.output
    errors = [line for line in run.stderr.splitlines() if line.startswith("scaletrain: error: ")]
    assert len(errors) == 1 and sentence in errors[0], run.output
    assert "Traceback" not in run.output
    assert not run.dir.exists(), sorted(run.dir.rglob("*"))  # no process started, and no run directory was left


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "cpu_devices", "sentence"),
    [
        (
            ["strategy.mesh_shape=[2]"],
            4,
            "mesh_shape=[2] spans 2 devices but the job has 4 (the runtime found 4",
        ),
        ([], 3, "train.global_batch_size=2 cannot be split evenly over the 3 XLA devices of the mesh"),
    ],
)
def test_worker_checks_what_only_the_runtime_knows(tmp_path, overrides, cpu_devices, sentence):
    """On a TPU only the runtime knows the device count: the worker checks the mesh and the batch against it. Here
    the worker is started by hand with more CPU devices than the job was planned for, to take that path."""
    with initialize_config_dir(config_dir=str(config.conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["+strategy=xla", *overrides])
    raw = OmegaConf.to_container(cfg, resolve=False)
    raw.update(output_dir=str(tmp_path), checkpoint={**raw["checkpoint"], "dir": str(tmp_path / "ckpt")})
    job_file = tmp_path / "job.json"
    config.load(raw).save_json(job_file)
    env = child_env({"PJRT_DEVICE": "CPU", "CPU_NUM_DEVICES": str(cpu_devices)})
    proc = subprocess.run(
        [sys.executable, "-m", "scaletrain.rank.worker", str(job_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("scaletrain: error: ")]
    assert len(errors) == 1 and sentence in errors[0], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
