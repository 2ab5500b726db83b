"""How the processes train together.

One module per strategy: ``Config``, ``create(config, env)``, ``preflight(job)``, ``describe(job)``, and
optionally ``worker_env(job, env)`` for variables its ranks need and ``procs_per_node(job)`` when the strategy
dictates how many processes run on each host.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaletrain.config import Job
    from scaletrain.env import ClusterEnv
    from scaletrain.strategies.base import Strategy


def create(config, env: ClusterEnv) -> Strategy:
    return importlib.import_module(f"scaletrain.strategies.{config.name}").create(config, env)


def preflight(job: Job) -> None:
    """Checks the driver makes before anything starts (e.g. a GPU backend on a host without GPUs)."""
    importlib.import_module(f"scaletrain.strategies.{job.strategy.name}").preflight(job)


def describe(job: Job) -> str:
    return importlib.import_module(f"scaletrain.strategies.{job.strategy.name}").describe(job)


def worker_env(job: Job, env: ClusterEnv) -> dict[str, str]:
    """Extra variables a rank of this strategy needs (e.g. TF_CONFIG), built from its ClusterEnv."""
    hook = getattr(importlib.import_module(f"scaletrain.strategies.{job.strategy.name}"), "worker_env", None)
    return hook(job, env) if hook else {}


def procs_per_node(job: Job) -> int | None:
    """Processes per host the strategy needs (xla: 1, one process drives every device), or None: the launcher's call."""
    hook = getattr(importlib.import_module(f"scaletrain.strategies.{job.strategy.name}"), "procs_per_node", None)
    return hook(job) if hook else None
