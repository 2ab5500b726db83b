"""What is trained. One module per workload: ``Config``, data as NumPy arrays, and a builder per framework.

A built-in workload defines ``build_torch(config, seed) -> TorchTask`` and ``build_tensorflow(config, seed) ->
TFTask`` (same architecture, same data), which the worker hands to the training driver; a workload that drives
training itself (user functions) defines ``run(ctx)`` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaletrain import registry
from scaletrain.errors import ConfigError

if TYPE_CHECKING:
    from scaletrain.config import Job


def _module(name: str):
    return registry.module("workload", name)


def preflight(job: Job) -> None:
    """Driver-side checks (files present, user function importable) before anything starts."""
    if job.script is not None:
        return
    module = _module(job.workload.name)
    given = getattr(module, "frameworks", None)  # a workload that covers only some frameworks (the user's own)
    if given is not None:
        from scaletrain import strategies

        wanted = strategies.of(job).framework
        if wanted not in given(job.workload):
            raise ConfigError(
                f"workload={job.workload.name} has no {wanted} section for +strategy={job.strategy.name}; set "
                f"workload.{wanted}.model and workload.{wanted}.train_data, or pick a strategy of "
                f"{' or '.join(given(job.workload))}."
            )
    check = getattr(module, "preflight", None)
    if check is not None:
        check(job.workload)


def module(name: str):
    """The module of workload ``name`` (``build_torch``/``build_tensorflow``, or ``run`` for user functions)."""
    return _module(name)
