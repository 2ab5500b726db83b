"""The TensorFlow strategies' driver side (no TensorFlow import): config, preflight, launcher hooks, checkpoints."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from test_config import compose_job

from scaletrain import strategies
from scaletrain.common import hardware
from scaletrain.contract.env import detect
from scaletrain.contract.errors import ConfigError
from scaletrain.driver import launchers, run
from scaletrain.rank import strategies as rank_strategies
from scaletrain.rank.loops.tf_data import ReplicaBatches
from scaletrain.strategies import mirrored, tpu
from scaletrain.strategies.plugin import Placement

ONE_HOST = Placement(nodes=1, procs_per_node=1)


def test_auto_means_one_process_per_host_for_tensorflow_and_unchanged_for_ddp():
    assert launchers.create(compose_job("+strategy=mirrored")).world_size == 1
    assert launchers.create(compose_job("+strategy=tpu")).world_size == 1
    ddp = launchers.create(compose_job("+strategy=ddp"))
    assert ddp.world_size == (hardware.gpu_count() or hardware.default_cpu_procs(hardware.cpu_count()))
    assert launchers.create(compose_job("+strategy=mirrored", "launcher.nproc_per_node=3")).world_size == 3


def test_local_launcher_gives_every_rank_its_own_free_port_for_tf_config():
    launcher = launchers.create(compose_job("+strategy=mirrored", "launcher.nproc_per_node=3",
                                            "launcher.master_port=29500"))  # fmt: skip
    with launcher.ports() as (port, addresses):
        assert port == 29500
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert "127.0.0.1:29500" not in addresses
    env = launcher.rank_env(2, 29500, addresses)
    config = json.loads(mirrored.PLUGIN.worker_env(launcher.job.strategy, env)["TF_CONFIG"])
    assert config == {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": 2}}


def test_one_process_gets_no_tf_config_and_ddp_never_does():
    job = compose_job("+strategy=mirrored")
    assert mirrored.PLUGIN.worker_env(job.strategy, detect({})) == {}
    launcher = launchers.create(compose_job("+strategy=ddp", "launcher.nproc_per_node=2"))
    with launcher.ports() as (port, addresses):
        env = launcher.rank_env(0, port, addresses)
    assert strategies.of(launcher.job).worker_env(launcher.job.strategy, env) == {}


def test_replicas_count_devices_per_process_and_batch_must_split_over_them():
    job = compose_job("+strategy=mirrored", "strategy.cpu_devices=2")
    assert mirrored.PLUGIN.replicas(job.strategy, 1) == 2
    with pytest.raises(ConfigError, match="strategy.cpu_devices=2 works in one process only"):
        mirrored.PLUGIN.replicas(job.strategy, 2)
    assert strategies.of(compose_job("+strategy=ddp")).replicas(compose_job("+strategy=ddp").strategy, 4) == 4
    odd = compose_job("+strategy=mirrored", "strategy.cpu_devices=2", "train.global_batch_size=5")
    with pytest.raises(
        ConfigError, match="global_batch_size=5 is not divisible by the 2 replicas; use a multiple of 2"
    ):
        run.preflight_point(odd)


def test_handed_in_tf_config_supplies_the_worker_list(monkeypatch):
    workers = ["10.0.0.1:5000", "10.0.0.2:5000"]
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}})
    )
    job = compose_job("+strategy=mirrored", "launcher.nnodes=2", "launcher.master_port=29500", "launcher.node_rank=1")
    run.preflight_point(job)  # several hosts are fine: TF_CONFIG names them
    env = launchers.create(job).rank_env(0, 29500)
    assert json.loads(mirrored.PLUGIN.worker_env(job.strategy, env)["TF_CONFIG"])["task"]["index"] == 1
    single = compose_job("+strategy=mirrored")
    with pytest.raises(ConfigError, match="lists 2 process"):
        mirrored.PLUGIN.worker_env(single.strategy, detect({}))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy.gpus=-1"], "strategy.gpus=-1 must be 'auto' or a whole number"),
        (["strategy.cpu_devices=0"], "strategy.cpu_devices=0 must be at least 1."),
        (["strategy.communication=mpi"], "strategy.communication='mpi' is not known"),
    ],
)
def test_bad_mirrored_settings(overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose_job("+strategy=mirrored", *overrides)


def test_tpu_resolver_arguments_come_from_config():
    job = compose_job("+strategy=tpu")
    assert tpu.resolver_kwargs(job.strategy) == {"tpu": "local"}
    named = compose_job("+strategy=tpu", "strategy.tpu=my-v4", "strategy.zone=us-central2-b", "strategy.project=p1")
    assert tpu.resolver_kwargs(named.strategy) == {"tpu": "my-v4", "zone": "us-central2-b", "project": "p1"}
    assert tpu.resolver_kwargs(compose_job("+strategy=tpu", "strategy.tpu=v5e").strategy) == {
        "tpu": "v5e",
        "zone": None,
        "project": None,
    }
    with pytest.raises(ConfigError, match="strategy.tpu=local uses this VM's own chips"):
        compose_job("+strategy=tpu", "strategy.zone=us-central2-b")


def test_tpu_local_preflight_passes_with_faked_tpu_device_files(tmp_path, monkeypatch):
    (tmp_path / "accel0").touch()
    monkeypatch.setattr(tpu, "TPU_DEVICE_PATTERNS", (str(tmp_path / "accel*"),))
    job = compose_job("+strategy=tpu")
    tpu.PLUGIN.preflight(job.strategy, job.train, ONE_HOST)
    monkeypatch.setattr(tpu, "TPU_DEVICE_PATTERNS", (str(tmp_path / "vfio" / "[0-9]*"),))
    with pytest.raises(ConfigError, match="found none"):
        tpu.PLUGIN.preflight(job.strategy, job.train, ONE_HOST)


def test_tpu_metadata_endpoint_follows_the_variables_tensorflow_reads():
    assert tpu.metadata_endpoint({}) == "http://metadata.google.internal/computeMetadata/v1/"
    assert tpu.metadata_endpoint({"GCE_METADATA_HOST": "10.1.2.3"}).startswith("http://10.1.2.3/")


def test_replica_batches_shard_every_sample_like_distributed_sampler():
    batches = ReplicaBatches(num_samples=11, global_batch_size=4, num_replicas=2, seed=3)
    order = batches.order(epoch=0)
    assert order.shape == (2, 6)  # 11 samples padded to 12
    assert sorted(set(order.ravel())) == list(range(11))
    assert len(batches) == 3
    steps = list(batches.epoch(0))
    assert [s.shape for s in steps] == [(2, 2), (2, 2), (2, 2)]
    assert np.array_equal(np.concatenate(steps, axis=1), order)
    assert np.array_equal(list(batches.epoch(0, skip=2))[0], steps[2])  # resume mid-epoch: same batches
    assert not np.array_equal(batches.order(1), order)  # a fresh order every epoch
    assert np.array_equal(ReplicaBatches(11, 4, 2, seed=3).order(1), batches.order(1))  # same on every process


def test_checkpoint_state_round_trips_without_pickle():
    strategy = rank_strategies.create(mirrored.Config(), detect({}))
    state = {
        "model": [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3)],
        "optimizer": [np.array(7, dtype=np.int64)],
        "step": 12,
        "note": {"lr": 0.5, "name": "x", "none": None},
    }
    buffer = io.BytesIO()
    strategy.save_state(state, buffer)
    buffer.seek(0)
    loaded = strategy.load_state(buffer)
    assert loaded["step"] == 12 and loaded["note"] == {"lr": 0.5, "name": "x", "none": None}
    assert np.array_equal(loaded["model"][0], state["model"][0]) and loaded["model"][0].dtype == np.float32
    assert loaded["optimizer"][0] == 7
