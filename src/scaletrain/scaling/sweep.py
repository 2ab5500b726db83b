"""Run one job at several world sizes, each in fresh processes, then analyse and report how it scaled."""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scaletrain import launchers, strategies
from scaletrain.config import Job
from scaletrain.errors import ConfigError
from scaletrain.scaling import analysis, report
from scaletrain.summary import RunSummary

log = logging.getLogger("scaletrain")


def resized_launcher(job: Job, world_size: int, largest: int) -> Any:
    """The launcher config for ``world_size`` ranks, from the launcher module's ``with_world_size`` hook."""
    module = importlib.import_module(f"scaletrain.launchers.{job.launcher.name}")
    hook = getattr(module, "with_world_size", None)
    if hook is None:
        raise ConfigError(
            f"launcher={job.launcher.name} cannot run scaling sweeps yet; use launcher=local or launcher=ray."
        )
    return hook(job.launcher, world_size, largest)


def point_job(job: Job, world_size: int, largest: int, group: str) -> Job:
    """The sweep's job at ``world_size`` devices: its own run directory, batch per the scaling mode, all-reduce
    timed. The strategy says how many processes drive that many devices (xla: one process, N XLA devices)."""
    cfg = job.scaling
    strategy, processes = strategies.sweep_point(job.strategy, world_size)
    largest_processes = strategies.sweep_point(job.strategy, largest)[1]
    if cfg.mode == "weak":
        global_batch = (cfg.per_device_batch_size or job.train.global_batch_size) * world_size
    else:
        global_batch = job.train.global_batch_size
    out = Path(job.output_dir) / f"world_size_{world_size}"
    return dataclasses.replace(
        job,
        strategy=strategy,
        launcher=resized_launcher(job, processes, largest_processes),
        train=dataclasses.replace(job.train, global_batch_size=global_batch),
        checkpoint=dataclasses.replace(job.checkpoint, dir=str(out / "checkpoints")),
        scaling=dataclasses.replace(cfg, world_sizes=[], measure_allreduce=True),
        logger=dataclasses.replace(job.logger, group=job.logger.group or group),
        output_dir=str(out),
        resume=False,
    )


def run_sweep(job: Job, run_one: Callable[[Job], int]) -> int:
    sizes = sorted(job.scaling.world_sizes)
    if sizes[0] != 1:
        log.info("adding world size 1: efficiency is measured against the 1-rank run")
        sizes = [1, *sizes]
    sweep_dir = Path(job.output_dir)
    group = f"{job.workload.name}-{job.strategy.name}-{sweep_dir.name}"
    points = [point_job(job, n, sizes[-1], group) for n in sizes]
    for point in points:  # every size is checked before the first one starts
        launchers.create(point).preflight()
    summaries = []
    for size, point in zip(sizes, points, strict=True):
        log.info("scaling sweep: world size %d", size)
        code = run_one(point)
        if code != 0:
            log.error("scaling sweep stopped: the run at world size %s failed", point.output_dir)
            return code
        summaries.append(RunSummary.read(Path(point.output_dir)))
    result = analysis.analyse(job.scaling.mode, summaries)
    paths = report.write(result, sweep_dir)
    print(report.table(result), flush=True)
    log.info("scaling results: %s", ", ".join(str(p) for p in paths.values()))
    if job.logger.name == "wandb":
        from scaletrain import tracking

        tracking.log_sweep(dataclasses.replace(job, logger=points[0].logger), result, paths.get("png"))
    return 0
