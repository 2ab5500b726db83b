"""TensorFlow strategies' bad input: one sentence naming the value and the fix, exit 2, no rank started."""

from __future__ import annotations

import importlib.util
import time

import pytest

from scaletrain.common import hardware

pytestmark = pytest.mark.tf  # the strategies first check that TensorFlow is installed

TOO_MANY_CPU_DEVICES = hardware.cpu_count() + 1
CASES = {
    "tpu on a machine without one": (
        ["+strategy=tpu"],
        {},
        "strategy.tpu=local looks for this host's TPU chips (/dev/accel*, /dev/vfio/N) and found none; run on a "
        "Cloud TPU VM",
    ),
    "tpu scaling sweep": (
        ["+strategy=tpu", "scaling.device_counts=[1,2]"],
        {},
        "scaling sweeps with +strategy=tpu are not supported: TPUStrategy always trains on every chip of its TPU",
    ),
    "unreachable tpu name": (
        ["+strategy=tpu", "strategy.tpu=my-v4-tpu", "strategy.timeout_s=5"],
        {"GCE_METADATA_HOST": "127.0.0.1:9"},  # nobody answers there, even on a Google Cloud VM
        "strategy.tpu=my-v4-tpu needs this VM's zone and project from the GCE metadata server "
        "(http://127.0.0.1:9/computeMetadata/v1/), which did not answer within 5 s (",
    ),
    "unreachable tpu address": (
        ["+strategy=tpu", "strategy.tpu=grpc://127.0.0.1:1", "strategy.timeout_s=5"],
        {},
        "strategy.tpu=grpc://127.0.0.1:1 did not answer within 5 s (ConnectionRefusedError",
    ),
    "more gpus than exist": (
        ["+strategy=mirrored", f"strategy.gpus={hardware.gpu_count() + 1}"],
        {},
        f"asks MirroredStrategy for {hardware.gpu_count() + 1} GPU(s) but this host has {hardware.gpu_count()}",
    ),
    "more cpu devices than cores": (
        ["+strategy=mirrored", "strategy.gpus=0", f"strategy.cpu_devices={TOO_MANY_CPU_DEVICES}"],
        {},
        f"strategy.cpu_devices={TOO_MANY_CPU_DEVICES} asks MirroredStrategy for {TOO_MANY_CPU_DEVICES} CPU devices "
        f"but this host has {hardware.cpu_count()} core(s)",
    ),
    "tf_config not json": (
        ["+strategy=mirrored"],
        {"TF_CONFIG": "{'cluster': {}}"},
        "TF_CONFIG (from your environment)=\"{'cluster': {}}\" is not JSON",
    ),
    "tf_config bad task index": (
        ["+strategy=mirrored"],
        {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'},
        "TF_CONFIG (from your environment) task.index=3 is out of range for 1 worker(s)",
    ),
    "tf_config for another world size": (
        ["+strategy=mirrored"],
        {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}'},
        "TF_CONFIG (from your environment) lists 3 process(es) but the job has 1 rank(s)",
    ),
    "logical cpu devices across processes": (
        ["+strategy=mirrored", "strategy.cpu_devices=2", "launcher.nproc_per_node=2"],
        {},
        "strategy.cpu_devices=2 works in one process only",
    ),
    "batch over replicas": (
        ["+strategy=mirrored", "strategy.cpu_devices=2", "train.global_batch_size=5"],
        {},
        "train.global_batch_size=5 is not divisible by the 2 replicas; use a multiple of 2 such as 4.",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_tensorflow_input_exits_2_with_one_sentence_and_starts_nothing(scaletrain, case):
    overrides, env, sentence = CASES[case]
    if case == "more cpu devices than cores" and hardware.gpu_count():
        pytest.skip("this host has GPUs, so the CPU is not split")
    started = time.monotonic()
    run = scaletrain(*overrides, env=env, timeout=60)
    took = time.monotonic() - started
    assert run.returncode == 2, run.output
    errors = [line for line in run.stderr.splitlines() if line.startswith("scaletrain: error: ")]
    assert len(errors) == 1 and sentence in errors[0], run.output
    assert errors[0].endswith(".") and "Traceback" not in run.output
    assert not run.dir.exists(), sorted(run.dir.rglob("*"))  # no rank started, and no run directory was left
    assert took < 30, f"took {took:.1f} s"


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) for m in ("cloud_tpu_client", "googleapiclient")),
    reason="the Cloud TPU API client is installed here",
)
def test_named_tpu_with_zone_and_project_needs_the_cloud_tpu_client(scaletrain):
    run = scaletrain("+strategy=tpu", "strategy.tpu=my-tpu", "strategy.zone=us-central2-b", "strategy.project=p")
    assert run.returncode == 2, run.output
    assert "strategy.tpu=my-tpu is looked up through the Cloud TPU API, whose client is not installed" in run.stderr
