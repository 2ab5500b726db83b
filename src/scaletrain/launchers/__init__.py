"""Where the processes run. One module per launcher: ``Config`` and ``create(job) -> Launcher``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaletrain.config import Job
    from scaletrain.launchers.base import Launcher


def create(job: Job) -> Launcher:
    return importlib.import_module(f"scaletrain.launchers.{job.launcher.name}").create(job)
