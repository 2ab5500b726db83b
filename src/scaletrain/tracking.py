"""Weights & Biases tracking from rank 0 only: offline without an API key, one run continued across restarts.

The run id is kept in the checkpoint directory (``wandb_run_id``), so a run restarted after a crash, a
``max_restarts`` restart or a SLURM requeue resumes the same W&B run. The API key is read by wandb itself from
the environment and is never written anywhere by scaletrain.
"""

from __future__ import annotations

import os
import platform
import secrets
import socket
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from scaletrain import hardware
from scaletrain.errors import ConfigError

RUN_ID_FILE = "wandb_run_id"
_VERSIONED = ("torch", "torch-xla", "tensorflow", "ray", "wandb", "hydra-core", "scaletrain")


def resolve_mode(mode: str, environ: Mapping[str, str] = os.environ) -> str:
    """auto → the user's WANDB_MODE if set, else online only when an API key is set; offline runs can be
    uploaded later with `wandb sync`."""
    if mode != "auto":
        return mode
    chosen = environ.get("WANDB_MODE", "").strip().lower()
    if chosen in ("online", "offline", "disabled"):
        return chosen
    if chosen == "dryrun":
        return "offline"
    return "online" if environ.get("WANDB_API_KEY") else "offline"


def preflight(job: Any, timeout_s: float = 5.0) -> None:
    """Online tracking needs the W&B server: check it answers before any rank starts."""
    if job.logger.name != "wandb" or resolve_mode(job.logger.mode) != "online":
        return
    import wandb

    url = urlparse(os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            f"logger=wandb is online but the W&B server {host}:{port} cannot be reached ({exc.strerror or exc}); "
            "use logger.mode=offline and upload later with `wandb sync`."
        ) from None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def run_config(job: Any, world_size: int) -> dict[str, Any]:
    """What a W&B run records about itself: the job, where it ran and with what."""
    return {
        "strategy": job.strategy.name,
        "launcher": job.launcher.name,
        "workload": job.workload.name,
        "world_size": world_size,
        "global_batch_size": job.train.global_batch_size,
        "hardware": {
            "host": platform.node(),
            "cpu_count": hardware.cpu_count(),
            "gpu_count": hardware.gpu_count(),
            "machine": platform.machine(),
        },
        "versions": versions(),
        "job": job.to_dict(),
    }


def _read_run_id(directory: Path) -> str | None:
    try:
        return (directory / RUN_ID_FILE).read_text().strip() or None
    except OSError:
        return None


def _write_run_id(directory: Path, run_id: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{RUN_ID_FILE}.{os.getpid()}"
    tmp.write_text(run_id + "\n")
    os.replace(tmp, directory / RUN_ID_FILE)


class WandbRun:
    """One W&B run, opened by rank 0."""

    def __init__(self, job: Any, world_size: int, resume: bool, name: str | None = None, job_type: str = "train"):
        import wandb  # lazily: only runs with logger=wandb pay for the import

        self._wandb = wandb
        checkpoint_dir = Path(job.checkpoint.dir)
        previous = _read_run_id(checkpoint_dir) if resume else None
        run_id = previous or secrets.token_hex(4)  # the shape of W&B's own run ids
        cfg = job.logger
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group,
            tags=list(cfg.tags),
            name=name or f"{job.workload.name}-{job.strategy.name}-ws{world_size}",
            job_type=job_type,
            id=run_id,
            resume="allow",
            dir=job.output_dir,
            mode=resolve_mode(cfg.mode),
            config=run_config(job, world_size),
            settings=wandb.Settings(console="off", silent=True),
        )
        if job_type == "train":
            _write_run_id(checkpoint_dir, run_id)
        self.resumed = previous is not None

    @property
    def id(self) -> str:
        return self.run.id

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self.run.log(chartable(metrics), step=step)

    def summary(self, figures: Mapping[str, Any]) -> None:
        for key, value in figures.items():
            if isinstance(value, int | float | str | bool) or key == "stragglers":
                self.run.summary[key] = value

    def finish(self, exit_code: int = 0) -> None:
        self.run.finish(exit_code=exit_code)


def chartable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A log step's figures as W&B charts them: a per-rank figure becomes one series per rank
    (``own_step_time_s/rank_1``), a named straggler its slowdown (``straggler_slowdown/rank_1``)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}/{name}": item for name, item in value.items()})
        elif key == "stragglers":
            flat.update({f"straggler_slowdown/rank_{s['rank']}": s["slowdown"] for s in value})
        else:
            flat[key] = value
    return flat


def start(job: Any, world_size: int, resume: bool) -> WandbRun | None:
    """The run for rank 0 of a training job, or None when tracking is off."""
    if job.logger.name != "wandb":
        return None
    if "wandb" not in sys.modules:
        os.environ.setdefault("WANDB_SILENT", "true")
    return WandbRun(job, world_size, resume)


def log_sweep(job: Any, analysis: Mapping[str, Any], plot_path: Path | None) -> None:
    """One more run in the sweep's W&B group: the scaling table, the efficiency chart and the fitted model."""
    import wandb

    run = WandbRun(job, world_size=0, resume=False, name=f"scaling-{job.logger.group}", job_type="scaling-summary")
    rows = analysis["rows"]
    columns = list(rows[0])
    table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])
    charts: dict[str, Any] = {"scaling_table": table}
    if plot_path is not None:  # no plot when nothing was measured
        charts["scaling_plot"] = wandb.Image(str(plot_path))
        charts["efficiency_chart"] = wandb.plot.line(table, "world_size", "efficiency", title="scaling efficiency")
    run.run.log(charts)
    run.run.summary["scaling"] = dict(analysis)
    run.finish()
