"""One source of defaults: the dataclasses. Every file under conf/ pulls its schema in through its defaults list
(driver/schema.py stores them in Hydra's ConfigStore) and sets only values that differ from it; the composed
config still holds every setting, typed, so `--cfg job` shows them all."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from scaletrain.contract import config, registry

CONF = config.conf_dir()
SECTIONS = {
    "train": config.TrainConfig,
    "checkpoint": config.CheckpointConfig,
    "scaling": config.ScalingConfig,
    "watchdog": config.WatchdogConfig,
    "preflight": config.PreflightConfig,
    "logger": config.LoggerConfig,
}


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return "???"


def _files() -> list[Path]:
    return sorted(CONF.rglob("*.yaml"))


def _schema_of(group: str, name: str) -> type:
    return config.LoggerConfig if group == "logger" else registry.module(group, name).Config


def _sections(path: Path) -> dict[str, tuple[type, dict]]:
    """Each mapping the file sets, with the dataclass that types it."""
    raw = OmegaConf.to_container(OmegaConf.load(path))
    raw.pop("defaults", None)
    group = path.parent.name
    if path.name == "config.yaml":
        return {key: (SECTIONS[key], value) for key, value in raw.items() if key in SECTIONS}
    if path.read_text().startswith("# @package _global_"):  # a workload preset: its workload and train values
        schema = _schema_of("workload", _pulled_in(path).rsplit("/", 1)[-1].split("@")[0])
        return {key: (schema if key == "workload" else SECTIONS[key], value) for key, value in raw.items()}
    return {group: (_schema_of(group, raw.get("name", path.stem)), raw)}


def _pulled_in(path: Path) -> str:
    entries = [e for e in OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []) if isinstance(e, str)]
    return next((e for e in entries if e.startswith(("/schema/", "job_schema"))), "")


def restated(where: str, values: dict, schema: type) -> list[str]:
    """The values ``values`` sets that are its schema's defaults anyway, or that are no setting of the schema."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    problems = []
    for key, value in values.items():
        if key not in fields:
            problems.append(f"{where}: {key} is set but is not a setting of {schema.__name__}")
        elif key != "name" and value == _default(fields[key]) and not (isinstance(value, str) and "${" in value):
            problems.append(f"{where}: {key}={value!r} restates the default of {schema.__name__}.{key}")
    return problems


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(CONF)))
def test_a_yaml_file_pulls_in_its_schema_and_restates_no_default(path: Path) -> None:
    group = path.parent.name
    if path.name == "config.yaml":
        assert _pulled_in(path) == "job_schema"
    elif group != "logger":  # the logger section is the job schema's own (LoggerConfig)
        assert _pulled_in(path).startswith(f"/schema/{group}/"), f"{path.name} does not pull in its schema"
    problems = [p for key, (schema, values) in _sections(path).items() for p in restated(key, values, schema)]
    assert problems == []


@pytest.mark.parametrize(("group", "name"), [(g, n) for g in registry.GROUPS for n in config.choices(g)])
def test_the_composed_config_holds_every_setting_of_the_plugin(group: str, name: str) -> None:
    choice = f"+strategy={name}" if group == "strategy" else f"{group}={name}"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[choice, "checkpoint.dir=/tmp/x", "output_dir=/tmp/x"])
    composed = OmegaConf.to_container(cfg)
    schema = _schema_of(group, composed[group]["name"])
    assert set(composed[group]) == {f.name for f in dataclasses.fields(schema)}
    for section, section_schema in SECTIONS.items():
        assert set(composed[section]) == {f.name for f in dataclasses.fields(section_schema)}


def test_a_restated_default_would_be_caught() -> None:
    """The check itself: a value equal to its dataclass default, and a key the dataclass lacks, are named."""
    problems = restated("train", {"epochs": 1, "lr": 0.5, "learning_rate": 1}, config.TrainConfig)
    assert problems == [
        "train: epochs=1 restates the default of TrainConfig.epochs",
        "train: learning_rate is set but is not a setting of TrainConfig",
    ]


CUSTOM = ["workload=custom", "workload.torch.model._target_=m.M", "workload.torch.train_data._target_=m.d"]


@pytest.mark.parametrize(
    ("overrides", "section", "key", "value"),
    [
        (["scaling.network={bandwidth_gbit_per_s:25,latency_us:5}"], "scaling", "network", {"latency_us": 5}),
        (
            ["launcher=ray", "launcher.runtime_env={env_vars:{A:B}}"],
            "launcher",
            "runtime_env",
            {"env_vars": {"A": "B"}},
        ),
        (
            [*CUSTOM, "workload.optimizer={_target_:torch.optim.AdamW,_partial_:true}"],
            "workload",
            "optimizer",
            {"_partial_": True},
        ),
        (["launcher=ray", "launcher.resources_per_rank={TPU:4}"], "launcher", "resources_per_rank", {"TPU": 4}),
        (
            [*CUSTOM, "workload.metrics={top5:{_target_:m.top5}}"],
            "workload",
            "metrics",
            {"top5": {"_target_": "m.top5"}},
        ),
        (["workload=function", "workload.fn._target_=m.train", "workload.fn.lr=0.1"], "workload", "fn", {"lr": 0.1}),
    ],  # fmt: skip
)
def test_a_mapping_setting_takes_a_mapping_on_the_command_line(overrides, section, key, value) -> None:
    """The defaults are plain mappings (driver/schema.py): a typed node of None would refuse the merge, and a mapping
    default is open to new keys (as the docs write `launcher.resources_per_rank={TPU: 4}`)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "checkpoint.dir=/tmp/x", "output_dir=/tmp/x"])
    job = config.load(OmegaConf.to_container(cfg, resolve=True))
    got = getattr(getattr(job, section), key)
    got = dataclasses.asdict(got) if dataclasses.is_dataclass(got) else got
    assert value.items() <= got.items(), got
