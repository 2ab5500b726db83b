"""Weights & Biases tracking from rank 0 only: offline without an API key, one run continued across restarts (the
driver's side, the server check and a sweep's summary run, is driver/tracking.py).

The run id is kept in the checkpoint directory (``wandb_run_id``), so a run restarted after a crash, a
``max_restarts`` restart or a SLURM requeue resumes the same W&B run. The API key is read by wandb itself from
the environment and is never written anywhere by scaletrain.
"""

from __future__ import annotations

import math
import os
import platform
import secrets
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrain import strategies
from scaletrain.common import hardware, netif
from scaletrain.contract import atomic
from scaletrain.contract.env import ClusterEnv, detect
from scaletrain.contract.errors import ScaletrainError

if TYPE_CHECKING:
    from scaletrain.contract.config import Job

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


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def run_config(job: Job, world_size: int | None, env: ClusterEnv | None = None) -> dict[str, Any]:
    """What a W&B run records about itself: the job, where it ran and with what.

    ``world_size`` is the job's processes (None for a sweep's summary run, which has none of its own); the config's
    ``devices`` are its devices, as a scaling sweep counts them, and ``processes`` the processes driving them.
    ``env``: this rank's ClusterEnv, for the hosts and the network interface.
    """
    config: dict[str, Any] = {
        "strategy": job.strategy.name,
        "launcher": job.launcher.name,
        "framework": _framework(job),
        "workload": job.workload.name,
    }
    if world_size is not None:
        config["devices"] = devices(job, world_size)
        config["processes"] = world_size
    config.update(
        global_batch_size=job.train.global_batch_size,
        hardware=hardware_config(),
        network=network_config(job, env),
        versions=versions(),
        job=job.to_dict(),
    )
    return config


def _framework(job: Job) -> str | None:
    try:
        return strategies.of(job).framework
    except (ScaletrainError, ImportError, AttributeError):  # a strategy scaletrain does not know (a test double)
        return None


def devices(job: Job, processes: int) -> int:
    """The devices a job of ``processes`` processes trains on, known before its strategy starts: one per process,
    or what the strategy drives from each (xla: its XLA devices; mirrored: its replicas). A run's summary gives the
    measured count (``replicas``), which then replaces this one (WandbRun.summary)."""
    try:
        return strategies.of(job).devices(job.strategy, processes)
    except (ScaletrainError, ImportError, AttributeError):
        return processes


def hardware_config() -> dict[str, Any]:
    """This host: its name, CPU model and cores, memory, and the GPUs (model, count) or TPU chips it has."""
    names = hardware.gpu_names()
    found: dict[str, Any] = {
        "host": platform.node(),
        "machine": platform.machine(),
        "cpu_model": hardware.cpu_model(),
        "cpu_count": hardware.cpu_count(),
        "memory_gib": hardware.memory_gib(),
        "gpu_count": hardware.gpu_count(),
        "gpu_name": ", ".join(sorted(set(names))) or None,
    }
    chips = hardware.tpu_chip_count()
    if chips:
        found["tpu_chips"] = chips
    return found


def network_config(job: Job, env: ClusterEnv | None, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The hosts of the job and the interface its ranks talk over: the user's GLOO_SOCKET_IFNAME or
    NCCL_SOCKET_IFNAME, else the one netif picks for this rank (the route to MASTER_ADDR), the pick the strategy
    makes when it starts. The α-β fit of the collectives joins it once measured (``measured_config``)."""
    hosts = env.num_nodes if env is not None else getattr(job.launcher, "nnodes", None)
    figures: dict[str, Any] = {"hosts": hosts if isinstance(hosts, int) else None, "interface": None}
    user = [(name, environ[name].strip()) for name in netif.VARIABLES if environ.get(name, "").strip()]
    if user:
        figures.update(interface=user[0][1], interface_chosen_by=f"{user[0][0]} (yours)")
    elif env is not None:
        try:
            pick = netif.pick(env.master_addr, env.master_port, multi_host=env.num_nodes > 1, peers=env.hosts)
        except (OSError, ValueError):  # NoInterface is an OSError: none could be told, as the strategy will log
            pass
        else:
            figures.update(interface=pick.ifname, address=pick.local_ip, interface_chosen_by=pick.why)
    return figures


def alpha_beta_config(fit: Mapping[str, Any] | None) -> dict[str, Any]:
    """The α-β fit of the all-reduce (a run summary's ``allreduce`` or a sweep's ``alpha_beta``) as config figures;
    {} when none was measured."""
    if not fit or fit.get("alpha_s") is None or fit.get("beta_s_per_byte") is None:
        return {}
    bandwidth = fit.get("bandwidth_gbit_per_s")
    return {
        "alpha_s": fit["alpha_s"],
        "beta_s_per_byte": fit["beta_s_per_byte"],
        "bandwidth_gbit_per_s": bandwidth if isinstance(bandwidth, int | float) and math.isfinite(bandwidth) else None,
        "alpha_beta_devices": fit.get("fitted_at_devices", fit.get("devices")),
    }


def measured_config(figures: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's config learns from its summary: its devices (``replicas``) and the α-β fit of its collectives."""
    found: dict[str, Any] = {}
    if isinstance(figures.get("replicas"), int) and figures["replicas"] > 0:
        found["devices"] = figures["replicas"]
    fit = alpha_beta_config(figures.get("allreduce"))
    if fit:
        found["network"] = fit
    return found


def _read_run_id(directory: Path) -> str | None:
    try:
        return (directory / RUN_ID_FILE).read_text().strip() or None
    except OSError:
        return None


def _write_run_id(directory: Path, run_id: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    atomic.write(directory / RUN_ID_FILE, run_id + "\n")


class WandbRun:
    """One W&B run, opened by rank 0."""

    def __init__(
        self,
        job: Job,
        world_size: int | None,
        resume: bool,
        name: str | None = None,
        job_type: str = "train",
        env: ClusterEnv | None = None,
        config: Mapping[str, Any] | None = None,
    ):
        """``world_size``: the job's processes; ``config``: the run's config, else ``run_config`` of the job."""
        import wandb  # lazily: only runs with logger=wandb pay for the import

        self._wandb = wandb
        checkpoint_dir = Path(job.checkpoint.dir)
        previous = _read_run_id(checkpoint_dir) if resume else None
        run_id = previous or secrets.token_hex(4)  # the shape of W&B's own run ids
        cfg = job.logger
        self._config = dict(config) if config is not None else run_config(job, world_size, env)
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group,
            tags=list(cfg.tags),
            name=name or f"{job.workload.name}-{job.strategy.name}-d{self._config.get('devices', world_size)}",
            job_type=job_type,
            id=run_id,
            resume="allow",
            dir=job.output_dir,
            mode=resolve_mode(cfg.mode),
            config=self._config,
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
        learned = measured_config(figures)
        if "network" in learned:
            learned["network"] = {**self._config.get("network", {}), **learned["network"]}
        if learned:
            self._config.update(learned)
            self.run.config.update(learned, allow_val_change=True)

    def finish(self, exit_code: int = 0) -> None:
        import wandb

        self.run.finish(exit_code=exit_code)
        # finish() only *publishes* inform_finish: wandb-core closes the stream, flushing the run's files, after it
        # has returned. teardown() waits for the service to exit, as W&B's own exit hook would, which a rank never
        # reaches: torch ranks end with os._exit.
        wandb.teardown()


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


def start(job: Job, world_size: int, resume: bool) -> WandbRun | None:
    """The run for rank 0 of a training job, or None when tracking is off."""
    if job.logger.name != "wandb":
        return None
    if "wandb" not in sys.modules:
        os.environ.setdefault("WANDB_SILENT", "true")
    try:
        env = detect(os.environ)  # what the worker itself read: hosts and MASTER_ADDR, for the network figures
    except ScaletrainError:
        env = None
    return WandbRun(job, world_size, resume, env=env)
