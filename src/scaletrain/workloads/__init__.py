"""What is trained. One module per workload: its ``Config``, its data, and its ``PLUGIN`` (workloads/plugin.py).

A built-in workload builds a ``TorchTask`` and a ``TFTask`` of the same architecture on the same data, which the
worker hands to the training driver; a workload that drives training itself (a user's function) has ``run(ctx)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaletrain.contract import registry
from scaletrain.contract.errors import ConfigError

if TYPE_CHECKING:
    from scaletrain.contract.config import Job


def preflight(job: Job) -> None:
    """Driver-side checks before anything starts: the workload trains under the strategy's framework, its files
    are present, its code importable."""
    if job.script is not None:
        return
    from scaletrain import strategies

    plugin = registry.workload(job.workload.name)
    wanted = strategies.of(job).framework
    if wanted not in plugin.frameworks(job.workload):
        raise ConfigError(plugin.framework_missing(job.workload, wanted, job.strategy.name))
    plugin.preflight(job.workload)
