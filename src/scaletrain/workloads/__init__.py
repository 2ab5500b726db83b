"""What is trained. One module per workload: ``Config``, data as NumPy arrays, and a builder per framework.

A built-in workload defines ``build_torch(config, seed) -> TorchTask`` and ``build_tensorflow(config, seed) ->
TFTask`` (same architecture, same data); a workload that drives training itself (user functions) defines
``run(ctx)`` instead.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from scaletrain.errors import ConfigError

if TYPE_CHECKING:
    from scaletrain.config import Job
    from scaletrain.context import RunContext


def _module(name: str):
    return importlib.import_module(f"scaletrain.workloads.{name}")


def preflight(job: Job) -> None:
    """Driver-side checks (files present, user function importable) before anything starts."""
    if job.script is not None:
        return
    check = getattr(_module(job.workload.name), "preflight", None)
    if check is not None:
        check(job.workload)


def run(ctx: RunContext) -> dict[str, Any]:
    """Train the job's workload on this rank and return the figures for summary.json."""
    module = _module(ctx.job.workload.name)
    if hasattr(module, "run"):
        return module.run(ctx)
    framework = ctx.strategy.framework
    builder = getattr(module, f"build_{framework}", None)
    if builder is None:
        raise ConfigError(
            f"workload '{ctx.job.workload.name}' has no {framework} version; pick a workload that does "
            f"or a strategy of another framework."
        )
    if framework == "torch":
        from scaletrain.loops.torch_loop import fit

        return fit(ctx, builder(ctx.job.workload, ctx.job.seed))
    if framework == "tensorflow":
        from scaletrain.loops.tf_loop import fit as fit_tf

        return fit_tf(ctx, builder(ctx.job.workload, ctx.job.seed))
    raise ConfigError(f"no training loop for framework '{framework}'.")
