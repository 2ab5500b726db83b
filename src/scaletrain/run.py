"""One job from validated config to exit code: pre-flight everything, then hand it to its launcher."""

from __future__ import annotations

import logging
from pathlib import Path

from scaletrain import checkpoint, launchers, strategies
from scaletrain.config import Job
from scaletrain.summary import RunSummary

log = logging.getLogger("scaletrain")


def run_job(job: Job) -> int:
    """A scaling sweep when scaling.world_sizes is set, else one run."""
    if job.preflight.network:  # before anything is placed on the cluster
        from scaletrain.netcheck import preflight

        preflight(job)
    if job.scaling.world_sizes:
        from scaletrain.scaling.sweep import run_sweep

        return run_sweep(job, lambda point: run_single(point, report_efficiency=False))
    return run_single(job)


def run_single(job: Job, report_efficiency: bool = True) -> int:
    launcher = launchers.create(job)
    checkpoint.check_dir(Path(job.checkpoint.dir))  # a file or unwritable dir: refused before anything starts
    launcher.preflight()  # raises ScaletrainError before any process starts
    if job.strategy_was_picked:
        log.info("no strategy given (+strategy=NAME): picked %s", strategies.describe(job))
    what = job.script or f"workload {job.workload.name}"
    log.info("%s with %s on the %s; outputs in %s", what, job.strategy.name, launcher.describe(), job.output_dir)
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    job_file = out / "job.json"
    job.save_json(job_file)
    code = launcher.launch(job_file)
    if code == 0 and report_efficiency:
        _report_efficiency(out)
    return code


def _report_efficiency(run_dir: Path) -> None:
    """A run beside a 1-rank run of the same config (Hydra multirun) gets its scaling efficiency."""
    from scaletrain.scaling.baseline import single_run_efficiency

    found = single_run_efficiency(run_dir)
    if found is None:
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
