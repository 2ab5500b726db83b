"""One source of defaults: every value a YAML file under conf/ sets is its schema's default (the dataclass a
module's ``Config`` or a section of config.yaml is typed by), and the main YAML file of each plugin lists every
setting, so `--cfg job` and the docs show them all. A preset (a YAML file named other than its module, such as
workload=digits_cnn) may set other values, but only settings its schema has."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from scaletrain import config, registry

CONF = config.conf_dir()
SECTIONS = {
    "train": config.TrainConfig,
    "checkpoint": config.CheckpointConfig,
    "scaling": config.ScalingConfig,
    "watchdog": config.WatchdogConfig,
    "preflight": config.PreflightConfig,
}
# Where the YAML deliberately differs from the dataclass, and why.
DIFFERENT = {
    # a skeleton that shows the builders' places, each _target_ null: the same as no section (frameworks() is empty)
    ("workload/custom", "torch"),
    ("workload/custom", "tensorflow"),
    # '???': Hydra's "must be given", so a missing function is named by Hydra before scaletrain starts
    ("workload/function", "fn"),
}
PARTIAL = {"logger/none"}  # no tracking: none of LoggerConfig's settings apply, so none is listed


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return dataclasses.MISSING


def _plugins() -> list[tuple[str, Path, type]]:
    found = []
    for group in (*config.GROUPS, "logger"):
        for path in sorted((CONF / group).glob("*.yaml")):
            values = _values(group, path)
            schema = config.LoggerConfig if group == "logger" else registry.module(
                group, values.get("name", path.stem)).Config  # fmt: skip
            found.append((f"{group}/{path.stem}", path, schema))
    return found


def _values(group: str, path: Path) -> dict:
    raw = OmegaConf.to_container(OmegaConf.load(path))
    return raw[group] if "@package _global_" in path.read_text().splitlines()[0] else raw


def _mismatches(where: str, values: dict, schema: type, complete: bool, preset: bool) -> list[str]:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    problems = [f"{where}: {key} is set in the YAML but is not a setting of {schema.__name__}"
                for key in values if key not in fields]  # fmt: skip
    for key, value in values.items():
        skip = key == "name" or preset or (where, key) in DIFFERENT  # name: which plugin (logger: none or wandb)
        if key not in fields or skip or (isinstance(value, str) and "${" in value):
            continue
        if value != _default(fields[key]):
            problems.append(f"{where}: {key} is {value!r} in the YAML but {_default(fields[key])!r} in the dataclass")
    if complete:
        problems += [f"{where}: {key} is a setting of {schema.__name__} the YAML does not list"
                     for key in fields if key not in values]  # fmt: skip
    return problems


@pytest.mark.parametrize(("where", "path", "schema"), _plugins(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_plugins_yaml_holds_its_dataclass_defaults(where: str, path: Path, schema: type) -> None:
    values = _values(where.split("/")[0], path)
    preset = path.stem != values.get("name", path.stem)
    assert _mismatches(where, values, schema, complete=not preset and where not in PARTIAL, preset=preset) == []


@pytest.mark.parametrize("section", list(SECTIONS))
def test_config_yaml_sections_hold_their_dataclass_defaults(section: str) -> None:
    values = OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml"))[section]
    assert _mismatches(f"config.yaml {section}", values, SECTIONS[section], complete=True, preset=False) == []


def test_a_drifted_default_would_be_caught() -> None:
    """The check itself: a YAML value off its dataclass default, and a setting the YAML leaves out, are named."""
    problems = _mismatches("x", {"epochs": 2}, config.TrainConfig, complete=True, preset=False)
    assert "x: epochs is 2 in the YAML but 1 in the dataclass" in problems
    assert "x: lr is a setting of TrainConfig the YAML does not list" in problems
