"""Every plugin scaletrain knows, by group and name: the one place where a name becomes code.

Adding a strategy, launcher or workload is its module, its YAML file under ``conf/<group>/`` and its line here; the
shared contract test (tests/unit/test_plugin_contract.py) runs every entry through the same checks. Modules are
imported only when their name is used, so a TensorFlow-only install never imports torch's strategies.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, ClassVar

from scaletrain.contract.errors import ConfigError

# A strategy module exports ``Config`` and ``PLUGIN`` (a strategies.plugin.StrategyPlugin).
STRATEGIES = {
    "ddp": "scaletrain.strategies.ddp",
    "mirrored": "scaletrain.strategies.mirrored",
    "tpu": "scaletrain.strategies.tpu",
    "xla": "scaletrain.strategies.xla",
}
# A launcher module exports its settings (``Config``) and names the driver module of its Launcher subclass
# (``LAUNCHER``, whose ``PLUGIN`` the driver builds with the job: driver/launchers/base.py).
LAUNCHERS = {
    "local": "scaletrain.launchers.local",
    "ray": "scaletrain.launchers.ray",
    "slurm": "scaletrain.launchers.slurm",
}
# A workload module exports ``Config`` and ``PLUGIN`` (a workloads.plugin.WorkloadPlugin: a task per framework for
# the training driver, or ``run(ctx)`` for a function that trains by itself).
WORKLOADS = {
    "digits": "scaletrain.workloads.digits",
    "synthetic": "scaletrain.workloads.synthetic",
    "linear": "scaletrain.workloads.linear",
    "mnist": "scaletrain.workloads.mnist",
    "cifar10": "scaletrain.workloads.cifar10",
    "custom": "scaletrain.workloads.custom",
    "function": "scaletrain.workloads.function",
    "charlm": "scaletrain.workloads.charlm",
}
GROUPS = {"strategy": STRATEGIES, "launcher": LAUNCHERS, "workload": WORKLOADS}


class NamedByConfig:
    """A plugin class (strategy, launcher, workload) named by its settings: its ``name`` is its ``Config``'s ``name``
    default, so the name is written once in code, in the ``Config``."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Config" in vars(cls):
            cls.name = cls.Config.name


def module(group: str, name: str) -> ModuleType:
    """The module of plugin ``name`` in ``group``; an unknown name is a user error naming the choices."""
    known = GROUPS[group]
    if name not in known:
        raise ConfigError(f"{group} '{name}' does not exist; choose one of: {', '.join(sorted(known))}.")
    return importlib.import_module(known[name])


def strategy(name: str) -> Any:
    """The strategy's ``StrategyPlugin`` (strategies/plugin.py)."""
    return module("strategy", name).PLUGIN


def launcher(name: str) -> Any:
    """The launcher's ``Launcher`` class (driver/launchers/base.py)."""
    return importlib.import_module(module("launcher", name).LAUNCHER).PLUGIN


def workload(name: str) -> Any:
    """The workload's ``WorkloadPlugin`` (workloads/plugin.py)."""
    return module("workload", name).PLUGIN
