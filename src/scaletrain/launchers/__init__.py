"""Where the processes run. One module per launcher, registered in ``scaletrain.registry``: ``Config``,
``create(job) -> Launcher`` (launchers/base.py: the seam) and ``with_world_size`` when it can run scaling sweeps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaletrain import registry

if TYPE_CHECKING:
    from scaletrain.config import Job
    from scaletrain.launchers.base import Launcher


def create(job: Job) -> Launcher:
    return registry.module("launcher", job.launcher.name).create(job)
