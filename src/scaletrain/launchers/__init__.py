"""Where the processes run. One module per launcher, registered in ``scaletrain.registry``: its ``Config`` and its
``Launcher`` subclass as ``PLUGIN`` (launchers/base.py: the seam, with ``sweep_point`` for scaling sweeps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaletrain import registry

if TYPE_CHECKING:
    from scaletrain.config import Job
    from scaletrain.launchers.base import Launcher


def create(job: Job) -> Launcher:
    return registry.launcher(job.launcher.name)(job)
