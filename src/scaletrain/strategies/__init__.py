"""How the processes train together: each strategy's settings and the hooks the driver calls before any rank starts.

One module per strategy, registered in contract/registry.py: its ``Config`` and its driver-side hooks as a
``StrategyPlugin`` (``PLUGIN``; strategies/plugin.py lists the hooks and their defaults). What a rank runs, the
strategy's ``Strategy`` subclass, is rank/strategies/<name>.py (``scaletrain.rank.strategies.create`` builds it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaletrain.contract import registry

if TYPE_CHECKING:
    from scaletrain.contract.config import Job
    from scaletrain.strategies.plugin import StrategyPlugin


def of(job: Job) -> StrategyPlugin:
    """The job's strategy plugin."""
    return registry.strategy(job.strategy.name)
