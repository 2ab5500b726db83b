"""fp16 runs only on CUDA GPUs (loss scaling): the paths this machine's CPU refuses. CI has no GPU, so these skip
there and say why; on a GPU machine they train y = 2x + 1 in mixed fp16 for real."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

FP16 = ("workload=linear", "seed=4", "train.precision=fp16")


def test_ddp_trains_in_fp16_with_a_loss_scaler_and_counts_its_skipped_steps(scaletrain):
    run = scaletrain("+strategy=ddp", "launcher.nproc_per_node=1", *FP16)
    assert run.returncode == 0, run.output
    summary = run.summary
    assert summary["precision"] == "fp16" and summary["compute_dtype"] == "float16"
    assert summary["weight"] == pytest.approx(2.0, abs=0.05) and summary["bias"] == pytest.approx(1.0, abs=0.1)
    assert isinstance(summary["skipped_steps"], int)
    assert all("skipped_steps" in m for m in run.metrics if "loss" in m)


@pytest.mark.tf
def test_mirrored_trains_in_fp16_with_keras_loss_scaling(scaletrain):
    run = scaletrain("+strategy=mirrored", "launcher.nproc_per_node=1", *FP16)
    assert run.returncode == 0, run.output
    assert run.summary["precision"] == "fp16" and run.summary["compute_dtype"] == "float16"
    assert run.summary["weight"] == pytest.approx(2.0, abs=0.05)
