"""How the processes train together.

One module per strategy: ``FRAMEWORK``, ``Config``, ``create(config, env)``, ``preflight(job)``, ``describe(job)``, and
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


def framework(job: Job) -> str:
    """ "torch" or "tensorflow": what the strategy's ranks train with, known before anything starts."""
    return importlib.import_module(f"scaletrain.strategies.{job.strategy.name}").FRAMEWORK


def needs_worker_addresses(job: Job) -> bool:
    """Whether the strategy's ranks name every peer's address before they start (its ``WORKER_ADDRESSES``)."""
    return getattr(importlib.import_module(f"scaletrain.strategies.{job.strategy.name}"), "WORKER_ADDRESSES", False)


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
    """Processes per host the strategy wants when launcher.nproc_per_node=auto; None: the launcher decides."""
    hook = getattr(importlib.import_module(f"scaletrain.strategies.{job.strategy.name}"), "procs_per_node", None)
    return hook(job) if hook else None


def procs_per_node_required(job: Job) -> bool:
    """True when the strategy cannot run any other number of processes per host than ``procs_per_node``."""
    module = importlib.import_module(f"scaletrain.strategies.{job.strategy.name}")
    return bool(getattr(module, "PROCS_PER_NODE_REQUIRED", False))


def replicas(job: Job, world_size: int) -> int:
    """Model replicas training in sync when the job runs as ``world_size`` processes (one each by default).

    A strategy that mirrors over several devices per process says how many; it raises ConfigError when it
    cannot run with that many processes.
    """
    hook = getattr(importlib.import_module(f"scaletrain.strategies.{job.strategy.name}"), "replicas", None)
    return hook(job, world_size) if hook else world_size


def sweep_point(config, world_size: int) -> tuple[object, int]:
    """(strategy config, processes) for a scaling-sweep point of ``world_size`` devices; by default one process
    per device. A strategy that drives several devices from one process (xla) sizes its own config instead."""
    hook = getattr(importlib.import_module(f"scaletrain.strategies.{config.name}"), "sweep_point", None)
    return hook(config, world_size) if hook else (config, world_size)
