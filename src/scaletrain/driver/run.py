"""One job from validated config to exit code, top to bottom: plan → pre-flight → launch → report.

A single run is one planned point; a scaling sweep (``scaling.device_counts``) is a list of planned points plus the
analysis of their summaries. Every point is planned and pre-flighted once, all of them before the first one starts
or is submitted, so that a wrong setting costs no process, job or cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scaletrain import strategies
from scaletrain.contract.config import JOB_FILE, Job
from scaletrain.contract.summary import RunSummary
from scaletrain.driver import launchers, preflight, runlock
from scaletrain.driver.launchers.base import Launcher

log = logging.getLogger("scaletrain")


def run_job(job: Job) -> int:
    preflight.job(job)  # what every point shares, checked once
    if job.preflight.network:  # job-wide, before anything is placed on the cluster
        from scaletrain.driver import netcheck

        netcheck.preflight(job)
    if job.scaling.device_counts:
        return run_sweep(job)
    return launch(job, preflight_point(job), report_efficiency=True)


def run_sweep(job: Job) -> int:
    """Every point here, one after another, then the analysis; under launcher=slurm, submitted (slurm_sweep)."""
    from scaletrain.driver.scaling import sweep

    if min(job.scaling.device_counts) > 1:
        log.info("adding 1 device: efficiency is measured against the 1-device run")
    points = sweep.plan(job)
    planned: list[Launcher] = []
    try:
        for point in points:
            planned.append(preflight_point(point.job))
    except BaseException:
        for launcher in planned:  # what the points checked so far took (a cluster connection)
            launcher.release()
        raise
    with holding(job, planned):
        return _run_points(job, points, planned)


def _run_points(job: Job, points: list, planned: list[Launcher]) -> int:
    from scaletrain.driver.scaling import sweep

    sweep_dir = Path(job.output_dir)
    job.save_json(sweep_dir / JOB_FILE)  # what `python -m scaletrain.scaling DIR` re-analyses from
    if job.launcher.name == "slurm":
        from scaletrain.driver.launchers import slurm_sweep

        return slurm_sweep.submit(job, points, planned)
    for point, launcher in zip(points, planned, strict=True):
        log.info("scaling sweep: %d device(s)", point.devices)
        code = launch(point.job, launcher, report_efficiency=False)
        if code != 0:
            log.error("scaling sweep stopped: the run on %d device(s) failed (%s)", point.devices, point.job.output_dir)
            return code
    return sweep.report_sweep(sweep_dir, job, points)


def preflight_point(job: Job) -> Launcher:
    """The point's launcher, once everything about the point that can be checked before a process starts has been
    (run_job checked what the points share)."""
    launcher = launchers.create(job)
    preflight.settings(job, launcher)  # the point's checkpoint dir and resume, the strategy on its placement
    try:
        launcher.preflight()  # the launcher's own: its cluster reachable, the job sized to it
        preflight.batch(job, launcher)  # job-wide, at the world size the launcher sized
        preflight.resume_size(job, launcher)  # a resume on as many processes as wrote its checkpoint
    except BaseException:
        launcher.release()
        raise
    return launcher


def launch(job: Job, launcher: Launcher, report_efficiency: bool) -> int:
    """Run a pre-flighted point to its exit code; a single run beside a 1-rank run also gets its efficiency."""
    if job.strategy_was_picked:
        log.info(
            "no strategy given (+strategy=NAME): picked %s",
            strategies.of(job).describe(job.strategy, launcher.placement),
        )
    what = job.script or f"workload {job.workload.name}"
    log.info("%s with %s on the %s; outputs in %s", what, job.strategy.name, launcher.describe(), job.output_dir)
    if not launcher.holds_run_dir:  # a further node of a multi-host job: the job's driver holds it
        return _launch(job, launcher, report_efficiency)
    with holding(job, [launcher]):
        return _launch(job, launcher, report_efficiency)


@contextmanager
def holding(job: Job, planned: list[Launcher]) -> Iterator[None]:
    """The job's directories held while it runs (runlock: a second job there is refused in one sentence, and the
    launchers then give back what their pre-flight took); released after, or handed to the SLURM jobs submitted,
    which hold them on after this process."""
    try:
        lock = runlock.acquire(job_dirs(job), job.launcher.name)
    except BaseException:
        for launcher in planned:
            launcher.release()
        raise
    try:
        yield
    finally:
        lock.hand_over([job_id for launcher in planned for job_id in launcher.submitted_job_ids()])
        lock.release()


def job_dirs(job: Job) -> list[Path]:
    """The directories a job writes and so holds: its run directory, and its checkpoint directory when elsewhere."""
    out = Path(job.output_dir).resolve()
    checkpoints = (out / job.checkpoint.dir).resolve()
    return [out] if checkpoints.is_relative_to(out) else [out, checkpoints]


def _launch(job: Job, launcher: Launcher, report_efficiency: bool) -> int:
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    job_file = out / JOB_FILE
    job.save_json(job_file)
    code = launcher.launch(job_file)
    if code == 0 and report_efficiency and launcher.trains_here:
        _report_efficiency(out)
    return code


def _report_efficiency(run_dir: Path) -> None:
    """A run beside a 1-rank run of the same config (Hydra multirun) gets its scaling efficiency."""
    from scaletrain.driver.scaling.baseline import single_run_efficiency

    found = single_run_efficiency(run_dir)
    if found is None:
        return
    if "efficiency_skipped" in found:
        log.info("%s", found["efficiency_skipped"])
        return
    summary = RunSummary.read(run_dir)
    summary.update(found)
    summary.write(run_dir)
    log.info(
        "%s scaling efficiency %.1f%% against the 1-rank run in %s",
        found["efficiency_mode"],
        100 * found["efficiency"],
        found["baseline_dir"],
    )
