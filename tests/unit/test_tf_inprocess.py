"""Real TensorFlow in this process: the Keras twins of the torch models, mid-epoch resume, the TPU resolver."""

from __future__ import annotations

import importlib
import importlib.util
import socket
import subprocess
import sys
import time

import pytest
from conftest import child_env
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scaletrain.contract import config
from scaletrain.contract import config as config_module
from scaletrain.contract.env import detect
from scaletrain.contract.errors import ConfigError
from scaletrain.rank import strategies as rank_strategies
from scaletrain.rank import worker
from scaletrain.rank.context import RunContext
from scaletrain.strategies import tpu
from scaletrain.strategies.plugin import Placement

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _job(tmp_path, *overrides: str) -> config.Job:
    with initialize_config_dir(config_dir=str(config.conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"checkpoint.dir={tmp_path / 'ckpt'}", f"output_dir={tmp_path}", *overrides])
    return config.load(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize(
    ("torch_args", "keras_args"),
    [
        (("mlp", 64, 128, 10, 2), ("mlp", (8, 8, 1), 128, 10, 2)),  # digits
        (("mlp", 256, 512, 10, 4), ("mlp", (256,), 512, 10, 4)),  # synthetic
        (("small_cnn", 1, 8, 10, 128), ("small_cnn", 1, 8, 10, 128)),  # digits_cnn
        (("small_cnn", 1, 28, 10), ("small_cnn", 1, 28, 10)),  # mnist
        (("small_cnn", 3, 32, 10), ("small_cnn", 3, 32, 10)),  # cifar10
    ],
)
def test_keras_and_torch_models_have_the_same_layers_and_parameter_counts(torch_args, keras_args):
    from scaletrain.workloads import keras_models, torch_models

    torch_model = getattr(torch_models, torch_args[0])(*torch_args[1:])
    keras_model = getattr(keras_models, keras_args[0])(*keras_args[1:])
    torch_shapes = [tuple(p.shape) for p in torch_model.parameters()]
    keras_shapes = [tuple(w.shape) for w in keras_model.weights]
    assert sum(p.numel() for p in torch_model.parameters()) == keras_model.count_params()
    assert len(torch_shapes) == len(keras_shapes)
    # Same layers in the same order: dense kernels are transposed, conv kernels are OIHW vs HWIO.
    for t, k in zip(torch_shapes, keras_shapes, strict=True):
        assert sorted(t) == sorted(k)


def test_linear_and_image_workloads_build_channels_last_keras_tasks():
    from scaletrain.workloads import digits, linear

    task = digits.PLUGIN.build_tensorflow(digits.Config(model="cnn"), seed=0)
    assert task.train[0].shape[1:] == (8, 8, 1) and task.val[0].shape[1:] == (8, 8, 1)
    torch_task = digits.PLUGIN.build_torch(digits.Config(model="cnn"), seed=0)
    assert len(task.train[0]) == len(torch_task.train[0])  # the same split
    assert (task.val[1] == torch_task.val[1].numpy()).all()
    model = linear.PLUGIN.build_tensorflow(linear.Config(), seed=0).model_fn()
    assert model.count_params() == 2


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_image_readers_feed_the_keras_cnn_channels_last(tmp_path, name):
    import numpy as np
    from test_readers import make_cifar10, make_mnist

    data = tmp_path / "data"
    data.mkdir()
    (make_mnist if name == "mnist" else make_cifar10)(data)
    module = importlib.import_module(f"scaletrain.workloads.{name}")
    cfg = module.Config(data_dir=str(data))
    task, torch_task = module.PLUGIN.build_tensorflow(cfg, seed=0), module.PLUGIN.build_torch(cfg, seed=0)
    keras_images = np.stack([x for x, _ in task.train.as_numpy_iterator()])  # the files, read lazily by tf.data
    torch_images = np.stack([x.numpy() for x, _ in torch_task.train])  # and by the torch Dataset
    assert np.array_equal(keras_images, torch_images.transpose(0, 2, 3, 1))
    assert task.model_fn().count_params() == sum(p.numel() for p in torch_task.model.parameters())
    args = ("+strategy=mirrored", f"workload={name}", f"workload.data_dir={data}", "train.global_batch_size=4")
    summary = _fit(_job(tmp_path, *args))
    assert summary["steps"] == {"mnist": 3 * 3, "cifar10": 5 * 5}[name]  # its epochs of 12 or 20 images, batches of 4
    assert 0 <= summary["val_accuracy"] <= 1


def _fit(job: config.Job) -> dict:
    env = detect({})
    strategy = rank_strategies.create(job.strategy, env)
    strategy.setup()
    ctx = RunContext(job, env, strategy)
    try:
        return worker.train(ctx)
    finally:
        ctx.close()


def test_resume_mid_epoch_ends_with_the_uninterrupted_result(tmp_path):
    args = ("+strategy=mirrored", "workload=digits", "train.epochs=2", "checkpoint.every_n_steps=0", "seed=5")
    whole = _fit(_job(tmp_path / "whole", *args))
    assert whole["steps"] == 46  # 1,437 training images in batches of 64, twice

    first = _fit(_job(tmp_path / "cut", *args, "train.max_steps=30"))  # stops 7 steps into the second epoch
    assert first["steps"] == 30
    resumed = _fit(_job(tmp_path / "cut", *args, "resume=true"))
    assert resumed["steps"] == 46
    assert resumed["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-6)
    assert resumed["replica_fingerprints"] == pytest.approx(whole["replica_fingerprints"], rel=1e-6)
    assert resumed["val_accuracy"] == whole["val_accuracy"]


def test_mnist_read_lazily_by_tf_data_resumes_mid_epoch_to_the_uninterrupted_result(tmp_path):
    from test_readers import make_mnist

    data = tmp_path / "data"
    data.mkdir()
    make_mnist(data, n_train=100)
    args = ("+strategy=mirrored", "workload=mnist", f"workload.data_dir={data}", "train.global_batch_size=16",
            "train.epochs=2", "checkpoint.every_n_steps=0", "seed=2")  # fmt: skip
    whole = _fit(_job(tmp_path / "whole", *args))
    assert whole["steps"] == 12  # 6 full batches of 16 an epoch (DatasetBatches)
    assert _fit(_job(tmp_path / "cut", *args, "train.max_steps=8"))["steps"] == 8  # 2 steps into the second epoch
    resumed = _fit(_job(tmp_path / "cut", *args, "resume=true"))
    assert resumed["steps"] == 12
    assert resumed["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-6)
    assert resumed["replica_fingerprints"] == pytest.approx(whole["replica_fingerprints"], rel=1e-6)
    assert resumed["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-6)


def test_tpu_cluster_resolver_is_built_from_the_config_arguments():
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(**tpu.resolver_kwargs(tpu.Config()))
    assert resolver.master() == ""  # local: the chips of this VM, no gRPC master
    remote = tf.distribute.cluster_resolver.TPUClusterResolver(
        **tpu.resolver_kwargs(tpu.Config(tpu="grpc://10.0.0.2:8470"))
    )
    assert remote.master() == "grpc://10.0.0.2:8470"
    assert remote.cluster_spec().as_dict() == {"worker": ["10.0.0.2:8470"]}


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) for m in ("cloud_tpu_client", "googleapiclient")),
    reason="the Cloud TPU API client is installed here, so TensorFlow does not fail on its absence",
)
def test_preflight_predicts_tensorflows_failure_for_a_tpu_name_without_its_api_client():
    import tensorflow as tf

    config = tpu.Config(tpu="my-tpu", zone="us-central2-b", project="my-project")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(**tpu.resolver_kwargs(config))
    with pytest.raises(RuntimeError, match="cloud-tpu-client"):
        resolver.master()  # the first call that asks the Cloud TPU API where the TPU is
    with pytest.raises(ConfigError, match="whose client is not installed; pip install cloud-tpu-client"):
        tpu.PLUGIN.preflight(config, config_module.TrainConfig(), Placement(nodes=1, procs_per_node=1))


# One attempt per process, as in a real rank: an abandoned connection attempt keeps TensorFlow's context busy.
_RANK_SIDE = """
import os, sys, time
from scaletrain.contract.env import detect
from scaletrain.contract.errors import LaunchError
from scaletrain.strategies import tpu
from scaletrain.rank import strategies as rank_strategies
from scaletrain.rank.strategies.tf_base import import_tensorflow
import_tensorflow()  # seconds of its own: the clock below times the strategy alone
config = tpu.Config(tpu=sys.argv[1], init_timeout_s=3)
started = time.monotonic()
try:
    rank_strategies.create(config, detect({})).setup()
    print("NO ERROR")
except LaunchError as exc:
    print(f"{time.monotonic() - started:.1f}|{exc}")
sys.stdout.flush()
os._exit(0)  # an abandoned connection thread must not hold the process
"""


def test_tpu_strategy_on_a_machine_without_tpu_fails_in_bounded_time_with_one_sentence():
    """The rank-side path, for real: TensorFlow's own resolver and TPU initialisation, and no TPU here."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nobody listens there once the socket is closed
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RANK_SIDE, tpu_arg],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for tpu_arg in ("local", f"grpc://127.0.0.1:{closed_port}")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        lines = [line for line in out.splitlines() if "|" in line]
        assert len(lines) == 1, out + err
        seconds, sentence = lines[0].split("|", 1)
        results.append((float(seconds), sentence))
    (local_s, local), (remote_s, remote) = results
    assert local == (
        "connecting to this VM's TPU and initialising its TPU system failed (NotFoundError: TPUs not found in the "
        "cluster); check that the TPU exists and is ready."
    )
    assert local_s < 20
    assert remote == (
        f"connecting to TPU grpc://127.0.0.1:{closed_port} and initialising its TPU system did not finish within "
        "3 s; check that the TPU exists and is running."
    )
    assert 3 <= remote_s < 8
    assert time.monotonic() - started < 100
