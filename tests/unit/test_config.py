"""Config validation: good configs load into typed dataclasses; bad values become one-sentence ConfigErrors."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scaletrain.contract import config
from scaletrain.contract.errors import ConfigError
from scaletrain.driver import schema


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
        (["train.on_nonfinite=ignore"], "train.on_nonfinite='ignore' is not known; use stop (end at the first"),
        (["train.global_batch_size=abc"], "train.global_batch_size='abc' is not valid (int expected)"),
        (["launcher.nnodes=2"], "launcher.nnodes=2 needs a fixed launcher.master_port"),
        (["launcher.node_rank=3"], "launcher.node_rank=3 must lie in 0..nnodes-1"),
        (["workload=digits", "workload.model=resnet"], "workload.model='resnet' is not known"),
        (["workload=synthetic", "workload.depth=0"], "workload.depth=0 must be at least 1."),
        (
            ["workload=mnist", "workload.data_dir=/tmp", "workload.worker_start_method=x"],
            "workload.worker_start_method='x' is not known",
        ),  # fmt: skip
        (["max_restarts=-1"], "max_restarts=-1 must be 0 or more."),
        (["train.lr=nan"], "train.lr=nan is not a finite number; give a finite value, e.g. train.lr=0.01."),
        (["train.lr=-1"], "train.lr=-1.0 must be positive"),
        (["train.momentum=1.5"], "train.momentum=1.5 must lie in [0, 1)"),
        (["train.weight_decay=-0.1"], "train.weight_decay=-0.1 must be 0 or more"),
        (["checkpoint.keep_last=0"], "checkpoint.keep_last=0 would keep no checkpoint; keep at least one"),
        (
            ["train.lr_schedule=exp"],
            "train.lr_schedule='exp' is not known; use one of: constant, cosine, linear, step.",
        ),
        (["train.warmup_steps=-1"], "train.warmup_steps=-1 must be 0 or more."),
        (["train.schedule_steps=0"], "train.schedule_steps=0 must be at least 1"),
        (
            ["train.lr_schedule=cosine", "train.warmup_steps=100", "train.schedule_steps=100"],
            "train.warmup_steps=100 leaves none of train.schedule_steps=100 to decay over",
        ),  # fmt: skip
        (["train.min_lr_ratio=1.5"], "train.min_lr_ratio=1.5 must lie in [0, 1]"),
        (["train.lr_schedule=step"], "train.lr_schedule=step needs train.lr_step_every_n_steps of at least 1"),
        (["train.lr_step_gamma=0"], "train.lr_step_gamma=0.0 must lie in (0, 1]"),
        (["train.clip_grad_norm=0"], "train.clip_grad_norm=0.0 must be positive"),
        (["train.precision=fp64"], "train.precision='fp64' is not known; use fp32, bf16 (mixed bfloat16) or fp16"),
        (["train.clip_grad_norm=nan"], "train.clip_grad_norm=nan is not a finite number"),
        (["checkpoint.every_n_steps=-5"], "checkpoint.every_n_steps=-5 must be 0 or more"),
        (["+strategy=tpu", "strategy.timeout_s=inf"], "strategy.timeout_s=inf is not a finite number"),
        (["launcher=ray", "launcher.placement_timeout_s=nan"], "launcher.placement_timeout_s=nan is not a finite"),
        (["launcher.master_addr=' '"], "launcher.master_addr is empty"),
        (["workload=digits", "workload.hidden=0"], "workload.hidden=0 must be at least 1"),
        (["logger=wandb", "logger.project=a:b"], "logger.project='a:b' contains :, which W&B does not accept"),
        (["logger=wandb", "logger.project=' '"], "logger.project=' ' is empty, which W&B does not accept"),
        (["logger=wandb", f"logger.tags=[{'t' * 65}]"], "must be 1 to 64 characters long"),
        (["seed=4294967296"], "seed=4294967296 must be a whole number from 0 to 4294967295"),
        (["+foo=bar"], "foo is not a setting scaletrain knows"),
        (["script=/"], "script=/ is a directory"),
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
            module = config.plugin_module(group, schema.plugin_of(config.conf_dir() / group / f"{name}.yaml"))
            assert hasattr(module, "Config"), (group, name)


def test_a_finite_value_at_the_edge_is_accepted():
    job = compose_job("train.momentum=0", "train.weight_decay=0", "logger=wandb", f"logger.project={'p' * 128}")
    assert job.train.momentum == 0 and job.logger.project == "p" * 128


def test_a_saved_job_with_a_key_scaletrain_does_not_know_is_refused():
    with pytest.raises(ConfigError, match=r"^extra is not a setting scaletrain knows"):
        config.load({"launcher": {"name": "local"}, "workload": {"name": "linear"}, "extra": 1})
