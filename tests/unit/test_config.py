"""Config validation: good configs load into typed dataclasses; bad values become one-sentence ConfigErrors."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scaletrain import config
from scaletrain.errors import ConfigError


def compose_job(*overrides: str) -> config.Job:
    with initialize_config_dir(config_dir=str(config.conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "checkpoint.dir=/tmp/x", "output_dir=/tmp/x"])
    return config.load(OmegaConf.to_container(cfg, resolve=True))


def test_default_config_picks_ddp_and_the_local_launcher():
    job = compose_job()
    assert job.strategy_was_picked and job.strategy.name == "ddp" and job.strategy.backend == "auto"
    assert job.launcher.name == "local" and job.launcher.nproc_per_node == "auto"
    assert job.workload.name == "linear"
    assert job.train.global_batch_size == 2 and job.train.epochs == 150


def test_plus_strategy_and_workload_overrides_are_typed():
    job = compose_job("+strategy=ddp", "workload=digits_cnn", "train.lr=0.5", "strategy.timeout_s=60")
    assert not job.strategy_was_picked
    assert job.workload.name == "digits" and job.workload.model == "cnn"
    assert job.train.lr == 0.5 and isinstance(job.strategy.timeout_s, float)


def test_job_round_trips_through_json(tmp_path):
    job = compose_job("+strategy=ddp", "workload=synthetic", "workload.width=32", "max_restarts=2")
    job.save_json(tmp_path / "job.json")
    assert config.load_json(tmp_path / "job.json") == job


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.epochs=0"], "train.epochs=0 must be at least 1."),
        (["train.optimizer=lbfgs"], "train.optimizer='lbfgs' is not known; use sgd, adam or adamw."),
        (["train.global_batch_size=abc"], "train.global_batch_size='abc' is not valid (int expected)"),
        (["launcher.nnodes=2"], "launcher.nnodes=2 needs a fixed launcher.master_port"),
        (["launcher.node_rank=3"], "launcher.node_rank=3 must lie in 0..nnodes-1"),
        (["workload=digits", "workload.model=resnet"], "workload.model='resnet' is not known"),
        (["workload=synthetic", "workload.depth=0"], "workload.depth=0 must be at least 1."),
        (["max_restarts=-1"], "max_restarts=-1 must be 0 or more."),
    ],
)
def test_bad_values_name_the_value_and_the_fix(overrides, message):
    with pytest.raises(ConfigError) as err:
        compose_job(*overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_group_member_lists_the_choices():
    with pytest.raises(ConfigError, match=r"strategy 'horovod' does not exist; choose one of: ddp"):
        config.load({"strategy": {"name": "horovod"}, "launcher": {"name": "local"}, "workload": {"name": "linear"}})


def test_unknown_setting_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"launcher.nprocs is not a setting of launcher; valid settings are: name,"):
        config.load({"launcher": {"name": "local", "nprocs": 2}, "workload": {"name": "linear"}})


def test_every_group_option_has_a_module_with_a_config():
    for group in config.GROUPS:
        for name in config.choices(group):
            values = OmegaConf.load(config.conf_dir() / group / f"{name}.yaml")
            node = values.get(group, values)  # workloads are @package _global_
            module = config.plugin_module(group, node["name"])
            assert hasattr(module, "Config"), (group, name)
