"""How the processes train together.

One module per strategy, registered in ``scaletrain.registry``: its ``Config``, its driver-side hooks as a
``StrategyPlugin`` (``PLUGIN``; strategies/plugin.py lists the hooks and their defaults) and its rank-side
``Strategy`` class (strategies/base.py), which ``PLUGIN.create`` builds in each worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaletrain import registry

if TYPE_CHECKING:
    from scaletrain.config import Job
    from scaletrain.env import ClusterEnv
    from scaletrain.strategies.base import Strategy
    from scaletrain.strategies.plugin import StrategyPlugin


def of(job: Job) -> StrategyPlugin:
    """The job's strategy plugin."""
    return registry.strategy(job.strategy.name)


def create(config, env: ClusterEnv) -> Strategy:
    """This rank's strategy (in a worker)."""
    return registry.strategy(config.name).create(config, env)
