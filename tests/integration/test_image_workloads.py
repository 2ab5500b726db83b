"""The built-in mnist workload on idx files written here, read lazily through the path workload=custom takes (a
DataLoader over a memory-mapped torch Dataset; tf.data): trained under ddp (2 ranks) and mirrored (2 processes);
under ddp also stopped part-way and resumed to the uninterrupted result (the mirrored resume runs in-process in
tests/unit/test_tf_inprocess.py, a third of the time)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

N_TRAIN, BATCH = 520, 64  # 8 full global batches an epoch; the in-memory paths made 9, the last one partial


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
    from test_readers import make_mnist

    directory = tmp_path_factory.mktemp("mnist")
    make_mnist(directory, n_train=N_TRAIN, n_test=64)
    return directory


STRATEGIES = {
    "ddp": ("+strategy=ddp", "launcher.nproc_per_node=2", "workload.num_workers=1"),
    "mirrored": ("+strategy=mirrored", "launcher.nproc_per_node=2"),
}


def _job(name: str, mnist_dir: Path) -> tuple[str, ...]:
    return (*STRATEGIES[name], "workload=mnist", f"workload.data_dir={mnist_dir}", f"train.global_batch_size={BATCH}",
            "train.epochs=2", "train.log_every_n_steps=4", "checkpoint.every_n_steps=0", "seed=3")  # fmt: skip


def _assert_trained(run) -> dict:
    assert run.returncode == 0, run.output
    summary = run.summary
    assert summary["steps"] == 2 * (N_TRAIN // BATCH)  # full batches only: the DataLoader / tf.data path
    assert summary["processes"] == 2 and 0 <= summary["val_accuracy"] <= 1 and summary["data_time_s"] > 0
    assert len(set(summary["replica_fingerprints"])) == 1
    return summary


@pytest.mark.tf
def test_mnist_trains_from_its_files_under_mirrored(scaletrain, mnist_dir: Path) -> None:
    _assert_trained(scaletrain(*_job("mirrored", mnist_dir)))


def test_mnist_trains_from_its_files_under_ddp_and_resumes_exactly(scaletrain, mnist_dir: Path) -> None:
    job = _job("ddp", mnist_dir)
    summary = _assert_trained(scaletrain(*job))
    cut = scaletrain(*job, "train.max_steps=11")  # 3 steps into the second epoch
    assert cut.returncode == 0, cut.output
    assert cut.summary["steps"] == 11
    resumed = scaletrain(*job, "resume=true", f"checkpoint.dir={cut.dir / 'checkpoints'}")
    assert resumed.returncode == 0, resumed.output
    assert resumed.summary["steps"] == summary["steps"]
    assert resumed.summary["final_loss"] == pytest.approx(summary["final_loss"], rel=1e-5, abs=1e-6)
    assert resumed.summary["replica_fingerprints"] == pytest.approx(summary["replica_fingerprints"], rel=1e-5)
    assert resumed.summary["val_loss"] == pytest.approx(summary["val_loss"], rel=1e-5)
