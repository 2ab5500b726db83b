"""Mixed precision (train.precision): what each device can run is refused before anything starts, in one sentence;
what runs is proven by the parity matrix (bf16 learns under every strategy, on Ray and SLURM)."""

from __future__ import annotations

import pytest
from test_config import compose_job

from scaletrain.common import hardware
from scaletrain.contract.errors import ConfigError
from scaletrain.driver import run
from scaletrain.rank import precision

CPU_ONLY = pytest.mark.skipif(hardware.gpu_count() > 0, reason="this host has a GPU, where fp16 is allowed")


def test_fp16_needs_cuda_and_bf16_runs_anywhere():
    for device in ("CPU", "TPU"):
        with pytest.raises(
            ConfigError,
            match=rf"train.precision=fp16 needs CUDA GPUs and this job's ddp ranks compute on {device}; use train",
        ):
            precision.check("fp16", "ddp", device)
        precision.check("bf16", "ddp", device)
    precision.check("fp16", "ddp", "cuda")
    precision.check("fp32", "mirrored", "CPU")


@CPU_ONLY
@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (("+strategy=ddp",), "train.precision=fp16 needs CUDA GPUs and this job's ddp ranks compute on CPU"),
        pytest.param(("+strategy=mirrored",), "this job's mirrored ranks compute on CPU", marks=pytest.mark.tf),
        pytest.param(
            ("+strategy=tpu", "strategy.tpu=local"), "this job's tpu ranks compute on TPU", marks=pytest.mark.tf
        ),
        pytest.param(
            ("+strategy=xla", "strategy.device=CPU"),
            "train.precision=fp16 is not supported under xla",
            marks=pytest.mark.xla,
        ),
    ],
)
def test_fp16_on_this_cpu_host_is_refused_before_anything_starts(strategy, message):
    with pytest.raises(ConfigError, match=message) as refused:
        run.preflight_point(compose_job(*strategy, "train.precision=fp16"))
    assert "\n" not in str(refused.value)
