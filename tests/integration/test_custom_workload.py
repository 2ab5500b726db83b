"""Your model and your data in scaletrain's driver (workload=custom): a small ResNet-style CNN on an image folder of
PNG files generated here, read lazily (a DataLoader with a distributed sampler; tf.data), trained under ddp and
mirrored, resumed after a kill to the uninterrupted result, and swept [1, 2] with a scaling table."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Run, beacon_path, child_env, scaletrain_argv

pytestmark = pytest.mark.slow

USERLAND = Path(__file__).parent / "userland"
TRAIN_IMAGES, VAL_IMAGES = 512, 64  # per class: 2,048 + 256 PNG files


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    import sys

    sys.path.insert(0, str(USERLAND))
    from imagefolder.data import make_image_folder

    return make_image_folder(tmp_path_factory.mktemp("images"), {"train": TRAIN_IMAGES, "val": VAL_IMAGES})


def _model_and_data(framework: str, images: Path) -> tuple[str, ...]:
    if framework == "torch":
        model, data = "imagefolder.models.resnet", "imagefolder.data.ImageFolder"
    else:
        model, data = "imagefolder.models.keras_resnet", "imagefolder.data.tf_images"
    return (
        f"workload.{framework}.model._target_={model}",
        f"workload.{framework}.train_data._target_={data}",
        f"+workload.{framework}.train_data.root={images}",
        f"+workload.{framework}.train_data.split=train",
        f"workload.{framework}.val_data._target_={data}",
        f"+workload.{framework}.val_data.root={images}",
        f"+workload.{framework}.val_data.split=val",
    )


STRATEGIES = {
    "ddp": ("torch", ("+strategy=ddp", "launcher.nproc_per_node=2", "workload.num_workers=1")),
    "mirrored": ("tensorflow", ("+strategy=mirrored", "launcher.nproc_per_node=2")),
}
TRAIN = ("workload=custom", "train.global_batch_size=64", "train.optimizer=adam", "train.lr=0.003", "seed=1")


def _job(name: str, images: Path, *more: str) -> tuple[str, ...]:
    framework, strategy = STRATEGIES[name]
    return (*strategy, *TRAIN, *_model_and_data(framework, images), *more)


METRICS = {"torch": "imagefolder.metrics.", "tensorflow": "imagefolder.metrics.keras_"}
# 32 steps per epoch, checkpoints every 12: the kill-and-restart test kills rank 1 past step 20, mid-epoch, leaving
# enough steps to outrun the beacon's second of lag (TensorFlow's slower steps need fewer epochs for that).
EPOCHS = {"ddp": 6, "mirrored": 3}
# The killed run stops here (train.max_steps), well past the kill and a checkpoint after it, and is compared with the
# uninterrupted run's window ending at the same step: every step of that window comes after the restart.
KILLED_RUN_STEPS = {"ddp": 96, "mirrored": 40}
_LEARNED: dict[str, Run] = {}


@pytest.fixture
def learned(images: Path, name: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The strategy's uninterrupted run of your model, with your metrics: run once, read by the test of what it
    learned and as the result a killed and restarted run must end with (metrics and logging change no weight)."""
    if name not in _LEARNED:
        metrics = METRICS[STRATEGIES[name][0]]
        run_dir = tmp_path_factory.mktemp("learned") / "run"
        job = _job(name, images, f"train.epochs={EPOCHS[name]}", "checkpoint.every_n_steps=12",
                   "train.log_every_n_steps=4", f"+workload.metrics.top2._target_={metrics}top2_accuracy",
                   f"+workload.metrics.label_mean._target_={metrics}label_mean")  # fmt: skip
        done = subprocess.run(scaletrain_argv(run_dir, *job), capture_output=True, text=True, timeout=300,
                              env=child_env({"PYTHONPATH": str(USERLAND)}), cwd=run_dir.parent)  # fmt: skip
        _LEARNED[name] = Run(done.returncode, done.stdout, done.stderr, run_dir)
    return _LEARNED[name]


@pytest.mark.parametrize("name", ["ddp", pytest.param("mirrored", marks=pytest.mark.tf)])
def test_your_model_learns_from_your_files(learned: Run, name: str) -> None:
    run = learned
    assert run.returncode == 0, run.output
    summary = run.summary
    assert summary["steps"] == EPOCHS[name] * (4 * TRAIN_IMAGES // 64)  # every file once per epoch, in full batches
    assert summary["val_accuracy"] > 0.8, summary  # 4 classes: chance is 0.25
    # your metrics: means over every validation row of both ranks (4 balanced classes: the mean label is 1.5)
    assert summary["val_accuracy"] <= summary["val_top2"] <= 1.0 and summary["val_label_mean"] == pytest.approx(1.5)
    logged = [m for m in run.metrics if "val_top2" in m]
    assert len(logged) == EPOCHS[name] and logged[-1]["val_top2"] == summary["val_top2"]
    assert summary["samples_per_s"] > 0 and summary["data_time_s"] > 0 and summary["gradient_bytes"] > 0


def _rank_1(run_dir: Path, proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        beacon = beacon_path(run_dir, 1)
        if beacon.exists() and json.loads(beacon.read_text())["step"] >= 20:
            return json.loads(beacon.read_text())["pid"]
        time.sleep(0.1)
    raise AssertionError("rank 1 did not reach step 20")


@pytest.mark.parametrize("name", ["ddp", pytest.param("mirrored", marks=pytest.mark.tf)])
def test_killed_and_restarted_mid_epoch_gives_the_uninterrupted_result(
    tmp_path: Path, images: Path, name: str, learned: Run
) -> None:
    steps = KILLED_RUN_STEPS[name]
    job = _job(name, images, f"train.epochs={EPOCHS[name]}", "checkpoint.every_n_steps=12",
               "train.log_every_n_steps=4", f"train.max_steps={steps}")  # fmt: skip
    reference = learned
    assert reference.returncode == 0, reference.output
    run_dir = tmp_path / "killed"
    env = child_env({"PYTHONPATH": str(USERLAND)})
    proc = subprocess.Popen(scaletrain_argv(run_dir, *job, "max_restarts=1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    try:
        os.kill(_rank_1(run_dir, proc), signal.SIGKILL)
        output, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, output
    assert "rank 1 was killed by signal SIGKILL" in output
    assert "restarting all ranks from the last checkpoint (restart 1 of 1)" in output
    resumed = re.search(r"resumed from .*step_(\d+)\.ckpt", output)
    assert resumed and int(resumed[1]) > 0 and int(resumed[1]) % 12 == 0, output  # a checkpoint of this run, mid-run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attempt"] == 1 and summary["steps"] == steps
    assert steps - 4 >= int(resumed[1])  # the last window (steps - 3 .. steps) was trained after the restart
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    window_loss = next(m["loss"] for m in reversed(logged) if m.get("step") == steps and "loss" in m)
    uninterrupted = next(m["loss"] for m in reference.metrics if m.get("step") == steps and "loss" in m)
    assert window_loss == pytest.approx(uninterrupted, rel=1e-5, abs=1e-6)


def test_sweep_of_your_model_gives_a_scaling_table(scaletrain, images: Path) -> None:
    run = scaletrain(*_job("ddp", images, "train.max_steps=24", "train.log_every_n_steps=4",
                           "scaling.device_counts=[1,2]", "scaling.allreduce_repeats=1"),
                     env={"PYTHONPATH": str(USERLAND)})  # fmt: skip
    assert run.returncode == 0, run.output
    result = json.loads((run.dir / "scaling.json").read_text())
    rows = {row["devices"]: row for row in result["rows"]}
    assert rows[1]["efficiency"] == pytest.approx(1.0) and rows[2]["efficiency"] > 0
    assert rows[2]["predicted_efficiency"] is not None and rows[2]["data_fraction"] > 0
    assert "| 2 |" in (run.dir / "scaling.md").read_text()
