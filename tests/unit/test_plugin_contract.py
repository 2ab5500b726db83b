"""The contract every registered plugin keeps: one module, one YAML file, one entry in ``scaletrain.contract.registry``.

A new strategy, launcher or workload gets these checks by being registered: its YAML and its Config agree on the
name, its defaults validate, and (strategies) its driver-side hooks answer from the job's own settings and the
launcher's Placement without reading the launcher's settings, with plain string variables and one-sentence errors;
(workloads) it defines a builder for every framework it names, or trains by itself, and refuses the others in a
sentence.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest
from test_config import compose_job

from scaletrain.contract import config, rank_env, registry
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError
from scaletrain.driver import schema
from scaletrain.driver.launchers.base import Launcher
from scaletrain.rank.strategies.base import Strategy
from scaletrain.strategies.plugin import Placement, StrategyPlugin
from scaletrain.workloads.plugin import FRAMEWORKS, WorkloadPlugin

OVERRIDES = {"workload": {"mnist": ["workload.data_dir=/tmp"], "cifar10": ["workload.data_dir=/tmp"],
                          "function": ["workload.fn._target_=json.dumps"],
                          "custom": ["workload.torch.model._target_=torch.nn.Identity",
                                     "workload.torch.train_data._target_=torch.nn.Identity"]}}  # fmt: skip


def _yaml_names(group: str) -> set[str]:
    """The plugins the YAML files of ``group`` select (each pulls in its plugin's schema)."""
    return {schema.plugin_of(path) for path in (config.conf_dir() / group).glob("*.yaml")}


@pytest.mark.parametrize("group", sorted(registry.GROUPS))
def test_every_registered_name_has_a_yaml_file_and_every_yaml_file_a_registered_name(group):
    assert set(registry.GROUPS[group]) == _yaml_names(group)


PLUGINS = [(group, name) for group in sorted(registry.GROUPS) for name in sorted(registry.GROUPS[group])]


@pytest.mark.parametrize(("group", "name"), PLUGINS)
def test_its_config_is_named_for_it_validates_its_defaults_and_composes(group, name):
    module = registry.module(group, name)
    schema = module.Config
    assert dataclasses.is_dataclass(schema) and schema().name == name
    job = compose_job(
        f"+{group}={name}" if group == "strategy" else f"{group}={name}", *OVERRIDES.get(group, {}).get(name, [])
    )
    assert isinstance(getattr(job, group), schema)


@pytest.mark.parametrize("name", sorted(registry.LAUNCHERS))
def test_a_launcher_is_created_from_the_job_plans_a_placement_and_sizes_a_sweep_point(name):
    cls = registry.launcher(name)
    assert issubclass(cls, Launcher) and cls.name == name
    job = compose_job(f"launcher={name}")
    launcher = cls(job)
    placement = launcher.placement
    assert isinstance(placement, Placement) and all(
        n is None or n >= 1 for n in (placement.nodes, placement.procs_per_node)
    )
    if placement.world_size is not None:
        assert placement.world_size == launcher.world_size
    try:
        resized = cls.sweep_point(job, 2, 4)  # its settings for a sweep's 2-rank point, or one sentence
    except ConfigError as exc:
        _one_sentence(exc)
    else:
        assert isinstance(resized, registry.module("launcher", name).Config) and resized.name == name


@pytest.mark.parametrize("name", sorted(registry.WORKLOADS))
def test_a_workload_builds_for_each_framework_it_names_or_trains_by_itself(name):
    plugin = registry.workload(name)
    assert isinstance(plugin, WorkloadPlugin) and plugin.name == name
    assert plugin.Config is registry.module("workload", name).Config
    settings = compose_job(f"workload={name}", *OVERRIDES["workload"].get(name, [])).workload
    frameworks = plugin.frameworks(settings)
    assert frameworks and set(frameworks) <= set(FRAMEWORKS)
    if plugin.trains_itself:
        assert type(plugin).run is not WorkloadPlugin.run, "a workload that trains by itself must define run"
    for framework in frameworks if not plugin.trains_itself else ():
        builder = f"build_{framework}"
        assert getattr(type(plugin), builder) is not getattr(WorkloadPlugin, builder), f"{name} names {framework}"
    for framework in set(FRAMEWORKS) - set(frameworks):  # refused before anything starts, in one sentence
        sentence = plugin.framework_missing(settings, framework, "some-strategy")
        assert f"workload={name}" in sentence and framework in sentence
        _one_sentence(ConfigError(sentence))
    try:
        plugin.preflight(settings)  # its defaults: pass, or one sentence (mnist: no files in /tmp)
    except ConfigError as exc:
        _one_sentence(exc)


def _cluster(rank: int, world_size: int) -> ClusterEnv:
    addresses = tuple(f"10.0.0.{i + 1}:2222" for i in range(world_size)) if world_size > 1 else ()
    return ClusterEnv(rank, rank, world_size, world_size, 0, 1, "10.0.0.1", 29500, "local", worker_addresses=addresses)


def _one_sentence(exc: ConfigError) -> None:
    text = str(exc)
    assert "\n" not in text and text.endswith((".", ")")), text


@pytest.mark.parametrize("name", sorted(registry.STRATEGIES))
def test_a_strategy_answers_its_hooks_from_its_own_settings_and_the_placement(name, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("PJRT_DEVICE", raising=False)
    plugin = registry.strategy(name)
    assert isinstance(plugin, StrategyPlugin) and plugin.name == name
    assert plugin.Config is registry.module("strategy", name).Config
    assert plugin.framework in ("torch", "tensorflow")
    runtime = importlib.import_module(f"scaletrain.rank.strategies.{name}").RUNTIME  # what the rank builds
    assert issubclass(runtime, Strategy) and runtime.framework == plugin.framework, "a strategy needs its rank side"
    assert not plugin.procs_per_node_required or plugin.procs_per_node is not None
    for hook in ("preflight", "describe", "worker_env", "replicas", "devices", "sweep_point"):
        taken = inspect.signature(getattr(plugin, hook)).parameters
        assert "job" not in taken, f"{name}'s {hook} takes the job; a hook gets its sections (strategies/plugin.py)"
    job = compose_job(f"+strategy={name}")  # the hooks get its sections, never the job (so never launcher settings)
    config = job.strategy
    placement = Placement(nodes=1, procs_per_node=plugin.procs_per_node or 2)
    assert plugin.describe(config, placement).startswith(name)
    try:
        plugin.preflight(config, job.train, placement)  # on this host: passes, or one sentence (tpu: no TPU here)
    except ConfigError as exc:
        _one_sentence(exc)
    for world_size in (1, 2):
        for rank in range(world_size):
            try:
                env = plugin.worker_env(config, _cluster(rank, world_size))
            except ConfigError as exc:
                _one_sentence(exc)
                continue
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()), env
            undeclared = set(env) - set(rank_env.TABLE)
            assert not undeclared, f"declare {undeclared} in contract/rank_env.py's TABLE"
        assert plugin.devices(config, world_size) >= world_size
    try:
        point, processes = plugin.sweep_point(config, 2)
    except ConfigError as exc:  # a strategy that cannot sweep says so in one sentence (tpu)
        _one_sentence(exc)
    else:
        assert isinstance(point, plugin.Config) and processes >= 1
