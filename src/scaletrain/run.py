"""One job from validated config to exit code: pre-flight everything, then hand it to its launcher."""

from __future__ import annotations

import logging
from pathlib import Path

from scaletrain import launchers, strategies
from scaletrain.config import Job

log = logging.getLogger("scaletrain")


def run_job(job: Job) -> int:
    launcher = launchers.create(job)
    launcher.preflight()  # raises ScaletrainError before any process starts
    if job.strategy_was_picked:
        log.info("no strategy given (+strategy=NAME): picked %s", strategies.describe(job))
    what = job.script or f"workload {job.workload.name}"
    log.info("%s with %s on the %s; outputs in %s", what, job.strategy.name, launcher.describe(), job.output_dir)
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    job_file = out / "job.json"
    job.save_json(job_file)
    return launcher.launch(job_file)
