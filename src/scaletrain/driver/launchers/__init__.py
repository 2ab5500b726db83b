"""Where the processes run. One module per launcher, registered in ``contract/registry.py``: its ``Config`` and its
``Launcher`` subclass as ``PLUGIN`` (driver/launchers/base.py: the seam, with ``sweep_point`` for scaling sweeps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaletrain.contract import registry

if TYPE_CHECKING:
    from scaletrain.contract.config import Job
    from scaletrain.driver.launchers.base import Launcher


def create(job: Job) -> Launcher:
    return registry.launcher(job.launcher.name)(job)
