"""``python -m scaletrain.scaling SWEEP_DIR``: analyse a scaling sweep's directory again.

It reads the sweep's job.json and every point's summary.json (a point without one is a row marked failed),
rewrites scaling.md/json/csv/png, prints the table and, when the sweep logged to W&B, logs the summary run again
(``--no-wandb`` skips that). A SLURM sweep's analysis job runs exactly this once its points ended; run it by hand
after rerunning a failed point, or on a sweep copied from another machine. Exit code: 0, 1 when a point failed,
2 when the directory holds no sweep.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from scaletrain.contract import config
from scaletrain.contract.config import JOB_FILE, Job
from scaletrain.contract.errors import ConfigError, ScaletrainError
from scaletrain.driver.scaling import sweep


def load(sweep_dir: Path) -> tuple[Job, list[sweep.Point]]:
    """The sweep's job and its points, as planned, with their directories under ``sweep_dir`` (wherever it is now)."""
    job_file = sweep_dir / JOB_FILE
    if job_file.is_file():
        job = dataclasses.replace(config.load_json(job_file), output_dir=str(sweep_dir))
        if job.scaling.device_counts:
            return job, sweep.plan(job)
    # a sweep written before its directory held the sweep's job.json: the points' own jobs
    found = [*sweep_dir.glob(f"{sweep.POINT_DIR}*/job.json"), *sweep_dir.glob("world_size_*/job.json")]  # or older
    points = sorted(found, key=lambda p: int(p.parent.name.split("_")[-1]))
    if not points:
        raise ConfigError(
            f"{sweep_dir} holds no scaling sweep (no job.json with scaling.device_counts, no devices_*/job.json); "
            "give the directory a sweep wrote (the run directory of a 'scaling.device_counts=[...]' run)."
        )
    jobs = [dataclasses.replace(config.load_json(p), output_dir=str(p.parent)) for p in points]
    planned = [sweep.Point(int(p.parent.name.split("_")[-1]), j) for p, j in zip(points, jobs, strict=True)]
    return dataclasses.replace(jobs[0], output_dir=str(sweep_dir)), planned


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaletrain.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep's directory (holding devices_N/ run directories)")
    parser.add_argument("--no-wandb", action="store_true", help="do not log the summary run to W&B again")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[scaletrain] %(message)s")
    try:
        if not args.sweep_dir.is_dir():
            raise ConfigError(f"{args.sweep_dir} is not a directory; give a scaling sweep's directory.")
        sweep_dir = args.sweep_dir.resolve()
        job, points = load(sweep_dir)
        return sweep.report_sweep(sweep_dir, job, points, wandb=not args.no_wandb)
    except ScaletrainError as exc:
        print(f"scaletrain: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
