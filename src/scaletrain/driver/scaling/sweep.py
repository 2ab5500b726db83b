"""Run one job on several device counts, each in fresh processes, then analyse and report how it scaled."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaletrain import strategies
from scaletrain.contract import registry
from scaletrain.contract.config import Job
from scaletrain.contract.summary import RunSummary
from scaletrain.driver.scaling import analysis, report

log = logging.getLogger("scaletrain")
POINT_DIR = "devices_"  # a point's run directory: devices_<N> (world_size_<N> before 2026-12-07)


def resized_launcher(job: Job, processes: int, largest: int) -> Any:
    """The launcher config for ``processes`` ranks, from the launcher's ``sweep_point`` hook."""
    return registry.launcher(job.launcher.name).sweep_point(job, processes, largest)


def point_job(job: Job, devices: int, largest: int, group: str) -> Job:
    """The sweep's job at ``devices`` devices: its own run directory, batch per the scaling mode, all-reduce
    timed. The strategy says how many processes drive that many devices (xla: one process, N XLA devices)."""
    cfg = job.scaling
    plugin = strategies.of(job)
    strategy, processes = plugin.sweep_point(job.strategy, devices)
    largest_processes = plugin.sweep_point(job.strategy, largest)[1]
    if cfg.mode == "weak":
        global_batch = (cfg.per_device_batch_size or job.train.global_batch_size) * devices
    else:
        global_batch = job.train.global_batch_size
    out = Path(job.output_dir) / f"{POINT_DIR}{devices}"
    return dataclasses.replace(
        job,
        strategy=strategy,
        launcher=resized_launcher(job, processes, largest_processes),
        train=dataclasses.replace(job.train, global_batch_size=global_batch),
        checkpoint=dataclasses.replace(job.checkpoint, dir=str(out / "checkpoints")),
        scaling=dataclasses.replace(cfg, device_counts=[], measure_allreduce=True),
        logger=dataclasses.replace(job.logger, group=job.logger.group or group),
        output_dir=str(out),
        resume=False,
    )


def sizes(job: Job) -> list[int]:
    """The sweep's device counts, in order, with the 1-device baseline every efficiency is measured against."""
    found = sorted(set(job.scaling.device_counts))
    return found if found[0] == 1 else [1, *found]


def group(job: Job) -> str:
    """The W&B group of the sweep's runs (logger.group when set)."""
    return job.logger.group or f"{job.workload.name}-{job.strategy.name}-{Path(job.output_dir).name}"


@dataclass(frozen=True)
class Point:
    """One planned point of a sweep: its size in devices and the job that runs it."""

    devices: int
    job: Job


def plan(job: Job) -> list[Point]:
    """Every point, smallest first (the 1-device baseline included); run.py pre-flights each once."""
    found = sizes(job)
    return [Point(n, point_job(job, n, found[-1], group(job))) for n in found]


def report_sweep(sweep_dir: Path, job: Job, points: list[Point], wandb: bool = True) -> int:
    """Analyse the points' summaries (a point without one is a failed row), write the report, print the table and
    log it to W&B; 0 when every point has a summary, 1 when one failed, 2 when none has."""
    summaries, failed = [], {}
    for point in points:
        out = Path(point.job.output_dir)
        if (out / "summary.json").is_file():
            summaries.append(RunSummary.read(out))
        else:
            failed[point.devices] = _why_failed(out)
    if not summaries:
        log.error("scaling sweep in %s: no point left a summary.json: %s", sweep_dir, "; ".join(failed.values()))
        return 2
    result = analysis.analyse(job.scaling.mode, summaries, failed, scaling=job.scaling)
    paths = report.write(result, sweep_dir)
    print(report.table(result), flush=True)
    log.info("scaling results: %s", ", ".join(str(p) for p in paths.values()))
    if wandb and job.logger.name == "wandb":
        from scaletrain.driver import tracking

        logger = dataclasses.replace(job.logger, group=group(job))
        tracking.log_sweep(dataclasses.replace(job, logger=logger), result, paths.get("png"))
    return 1 if failed else 0


def _why_failed(run_dir: Path) -> str:
    """Why a point left no summary: its SLURM job's end state where it was one, else that its run did not finish."""
    job_file = run_dir / "slurm_job_id"
    if job_file.is_file():
        from scaletrain.driver.launchers import slurm_cluster

        job_id = job_file.read_text().strip()
        state, code = slurm_cluster.final_state(job_id, settle_s=0)
        return f"SLURM job {job_id} ended {state} (exit code {code}) without a summary.json; its log: {run_dir}"
    return f"no summary.json in {run_dir}: the run failed or did not finish"
