"""The driver's side of Weights & Biases: the online server checked before any rank starts, and a sweep's summary run
(its table, charts and fitted model) once the sweep's points ended. A rank's own run is rank/tracking.py."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from scaletrain.contract.errors import ConfigError
from scaletrain.driver.scaling.charts import scaling_charts, table_data
from scaletrain.rank.tracking import WandbRun, alpha_beta_config, resolve_mode, run_config

if TYPE_CHECKING:
    from scaletrain.contract.config import Job


def preflight(job: Job, timeout_s: float = 5.0) -> None:
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


def log_sweep(job: Job, analysis: Mapping[str, Any], plot_path: Path | None) -> None:
    """One more run in the sweep's W&B group: the scaling table, native charts of efficiency, throughput and the
    time split against world size (measured beside ideal and predicted), the chart image and the fitted model."""
    import wandb

    rows = list(analysis.get("rows") or [])
    config = run_config(job, world_size=None)
    config["network"].update(alpha_beta_config(analysis.get("alpha_beta")))
    config.update(device_counts=[r.get("devices") for r in rows], scaling_mode=analysis.get("mode"))
    name = f"scaling-{job.logger.group}"
    run = WandbRun(job, world_size=None, resume=False, name=name, job_type="scaling-summary", config=config)
    charts: dict[str, Any] = {}
    if rows:
        columns, data = table_data(rows)
        charts["scaling_table"] = wandb.Table(columns=columns, data=data, allow_mixed_types=True)  # failed rows
    forecast = (analysis.get("forecast") or {}).get("rows")
    if forecast:  # sizes the sweep did not run: no-overlap and full-overlap bounds, with their ranges
        columns, data = table_data(forecast)
        charts["forecast_table"] = wandb.Table(columns=columns, data=data, allow_mixed_types=True)
    if plot_path is not None:  # no plot when nothing was measured
        charts["scaling_plot"] = wandb.Image(str(plot_path))
    charts.update(scaling_charts(wandb, rows))
    if charts:
        run.run.log(charts)
    run.run.summary["scaling"] = dict(analysis)
    run.finish()
