"""Each strategy as a rank runs it: ``rank/strategies/<name>.py`` holds its ``Strategy`` subclass (base.py: what a
training loop may ask of any strategy) as ``RUNTIME``; the strategy's settings and driver-side hooks are
``strategies/<name>.py``. A runtime module may import its framework at the top: only ranks import it."""

from __future__ import annotations

import importlib
from typing import Any

from scaletrain.contract.env import ClusterEnv
from scaletrain.rank.strategies.base import Strategy


def create(config: Any, env: ClusterEnv) -> Strategy:
    """This rank's strategy, built from the job's ``strategy`` settings (``config.name`` names its module here)."""
    return importlib.import_module(f"{__name__}.{config.name}").RUNTIME(config, env)
