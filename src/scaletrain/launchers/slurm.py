"""``launcher=slurm``: on a login node, render the sbatch job and submit it; in the batch shell, prepare the job.

Where ``python -m scaletrain launcher=slurm ...`` runs decides what it does:

- outside any job (``submit``): compose and pre-flight the job against the cluster, write ``job.json`` into the run
  directory, render the batch script (``slurm_script``), ``sbatch`` it, report the job id, and optionally wait while
  streaming its log (``launcher.wait``). ``launcher.dry_run`` prints the script instead of submitting it.
- in a batch shell but not a job step (``prepare``: a hand-written ``sbatch slurm/ddp.sbatch ARGS``): the same
  pre-flight with the allocation's placement, then ``job.json`` is written and the run directory handed to this
  SLURM job; nothing is started (the script then runs the ranks with srun).
- in an srun task: refused. Each task is a rank and runs ``python -m scaletrain.launchers.slurm_rank job.json``
  (``slurm_rank``), which reads the job the driver prepared: no task composes or checks it again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaletrain import stopping, strategies
from scaletrain.config import Job
from scaletrain.env import ClusterEnv, slurm_allocation
from scaletrain.errors import ConfigError, LaunchError
from scaletrain.launchers import slurm_cluster
from scaletrain.launchers.base import Launcher
from scaletrain.launchers.slurm_script import BatchRequest, render, sbatch_options, value_problem
from scaletrain.strategies.plugin import Placement

log = logging.getLogger("scaletrain")

_OPTION = re.compile(r"--[a-z][a-z0-9-]*(=.+)?")
# Options scaletrain writes itself; an extra one of these would silently fight the rendered value.
_MANAGED = {"job-name", "nodes", "ntasks-per-node", "gpus-per-node", "cpus-per-task", "mem", "time", "partition"}
_MANAGED |= {"account", "qos", "signal", "requeue", "open-mode", "output"}
# Overrides that only concern the submitting process; the script appends launcher=slurm itself.
_SUBMIT_ONLY = re.compile(r"\s*(launcher\s*=\s*slurm|launcher\.(dry_run|wait)\s*=.*)\s*$")
# The string settings written on #SBATCH lines, with a value each would accept, for the error message.
_NAMED = {"job_name": "train", "partition": "gpu", "account": "myproject", "qos": "normal"}


@dataclass
class Config:
    name: str = "slurm"
    nodes: int = 1
    ntasks_per_node: Any = "auto"  # auto: the strategy's tasks per node, else one per GPU, else 1
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    mem_gb: int | None = None
    time_min: int | None = None
    partition: str | None = None  # None: the cluster's default partition
    account: str | None = None
    qos: str | None = None
    job_name: str = "scaletrain"
    signal: str = stopping.DEFAULT_SIGNAL  # sent to the batch shell before the time limit and on preemption
    signal_before_end_s: int = 180
    max_requeues: int = 10
    sbatch_args: list[str] = field(default_factory=list)  # more options, e.g. ["--constraint=a100"]
    dry_run: bool = False
    wait: bool = False

    def validate(self) -> None:
        n = self.ntasks_per_node
        if n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"launcher.ntasks_per_node={n!r} must be 'auto' or a whole number of at least 1.")
        for key, minimum in (("nodes", 1), ("gpus_per_node", 0), ("signal_before_end_s", 0), ("max_requeues", 0)):
            if getattr(self, key) < minimum:
                raise ConfigError(f"launcher.{key}={getattr(self, key)} must be at least {minimum}.")
        for key in ("cpus_per_task", "mem_gb", "time_min"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"launcher.{key}={getattr(self, key)} must be at least 1 (or null to leave it out).")
        if not self.job_name.strip():
            raise ConfigError("launcher.job_name is empty; give the job a name such as launcher.job_name=train.")
        for key, example in _NAMED.items():
            value = getattr(self, key)
            problem = value is not None and value_problem(value, name=key != "job_name")
            if problem:
                raise ConfigError(
                    f"launcher.{key}={value!r} cannot go on an #SBATCH line: it {problem}; "
                    f"use a plain value such as launcher.{key}={example}."
                )
        try:
            stopping.signal_number(self.signal)
        except ConfigError:
            raise ConfigError(
                f"launcher.signal={self.signal!r} is not supported; use one of: {', '.join(stopping.SIGNALS)}."
            ) from None
        for item in self.sbatch_args:
            value = item.partition("=")[2]
            if "=" in item and (problem := value_problem(value)):
                raise ConfigError(
                    f"launcher.sbatch_args item {item!r} cannot go on an #SBATCH line: its value {problem}; "
                    "give a plain value such as '--constraint=a100'."
                )
            if not _OPTION.fullmatch(item):
                raise ConfigError(
                    f"launcher.sbatch_args item {item!r} is not an sbatch option such as '--constraint=a100'."
                )
            key = item[2:].partition("=")[0]
            if key in _MANAGED:
                raise ConfigError(
                    f"launcher.sbatch_args item {item!r} sets --{key}, which scaletrain writes itself; "
                    f"use launcher.{key.replace('-', '_')} instead."
                )


def mode(environ: Mapping[str, str]) -> str:
    """'step' inside an srun task, 'prepare' inside an allocation but not a step, 'submit' anywhere else."""
    if "SLURM_STEP_ID" in environ and "SLURM_PROCID" in environ:
        return "step"
    return "prepare" if "SLURM_JOB_ID" in environ else "submit"


def tasks_per_node(job: Job, check: bool = True) -> int:
    """Tasks (ranks) per node: the strategy's own count, else one per GPU asked for, else 1."""
    cfg = job.launcher
    expected = strategies.of(job).procs_per_node
    why = f"strategy {job.strategy.name} runs {expected} task(s) per node"
    if expected is None and cfg.gpus_per_node:
        expected = cfg.gpus_per_node
        why = f"{job.strategy.name} runs one task per GPU and launcher.gpus_per_node={cfg.gpus_per_node}"
    if cfg.ntasks_per_node == "auto":
        return expected or 1
    if check and expected is not None and cfg.ntasks_per_node != expected:
        raise ConfigError(
            f"launcher.ntasks_per_node={cfg.ntasks_per_node} does not match the GPUs: {why}; "
            f"set launcher.ntasks_per_node={expected} (or auto)."
        )
    return cfg.ntasks_per_node


def task_overrides() -> list[str]:
    """The command-line overrides of this Hydra job (this point's, in a multirun), as the user typed them."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if not _SUBMIT_ONLY.match(o)]


class SlurmLauncher(Launcher):
    name = "slurm"

    @classmethod
    def sweep_point(cls, job: Job, world_size: int, largest: int) -> Config:
        """The job for a scaling-sweep point of ``world_size`` ranks: whole nodes of the job's tasks per node (one node
        with fewer tasks when the point is smaller than a node), and with one task per GPU only the GPUs it uses."""
        config = job.launcher
        per_node = tasks_per_node(job)
        if world_size <= per_node:
            nodes, tasks = 1, world_size
        elif world_size % per_node:
            raise ConfigError(
                f"scaling.world_sizes holds {world_size}, which is not a whole number of nodes of {per_node} task(s) "
                f"each; sweep multiples of {per_node}, or set launcher.ntasks_per_node to a size that divides it."
            )
        else:
            nodes, tasks = world_size // per_node, per_node
        one_per_gpu = strategies.of(job).procs_per_node is None and config.gpus_per_node
        gpus = tasks if one_per_gpu else config.gpus_per_node
        auto = config.ntasks_per_node == "auto" and tasks == per_node  # keep 'auto' where it gives the same count
        return dataclasses.replace(config, nodes=nodes, ntasks_per_node="auto" if auto else tasks, gpus_per_node=gpus)

    def __init__(self, job: Job, environ: Mapping[str, str] = os.environ) -> None:
        super().__init__(job)
        self.mode = mode(environ)
        if self.mode == "step":
            raise LaunchError(
                "'python -m scaletrain launcher=slurm' prepares a job once, in the batch shell or on a login node, "
                "not in each srun task; the ranks run 'srun python -m scaletrain.launchers.slurm_rank RUN_DIR/job.json'"
                " after it (as slurm/ddp.sbatch does)."
            )
        # In the batch shell: the allocation's own placement (SLURM_NTASKS, SLURM_TASKS_PER_NODE, ...).
        self.env: ClusterEnv | None = slurm_allocation(environ) if self.mode == "prepare" else None
        self._submitted: list[str] = [self.env.job_id] if self.env is not None and self.env.job_id else []

    @property
    def world_size(self) -> int:
        if self.env is not None:
            return self.env.world_size
        return self.job.launcher.nodes * tasks_per_node(self.job, check=False)

    @property
    def placement(self) -> Placement:
        if self.env is not None:
            return Placement(self.env.num_nodes, self.env.local_world_size, nodes_from="SLURM_NNODES")
        cfg = self.job.launcher
        return Placement(cfg.nodes, tasks_per_node(self.job, check=False), nodes_from="launcher.nodes")

    @property
    def trains_here(self) -> bool:
        return False  # the submitted job (or the batch script, after this prepared it) trains

    def describe(self) -> str:
        if self.env is not None:
            return f"slurm launcher, job {self.env.job_id}: {self.world_size} rank(s) on {self.env.num_nodes} node(s)"
        nodes = self.job.launcher.nodes
        return f"slurm launcher, {self.world_size} rank(s): {nodes} node(s) x {self.world_size // nodes} task(s)"

    def preflight(self) -> None:
        if self.mode != "submit":
            return
        run_dir = self.job.output_dir  # written on the #SBATCH --output line, resolved as _submit does
        run_dir = run_dir if "\0" in run_dir else str(Path(run_dir).resolve())  # resolve() raises on a NUL
        if problem := value_problem(run_dir):
            raise ConfigError(
                f"the run directory {run_dir!r} cannot go on the script's #SBATCH --output line: it {problem}; "
                "choose another one with hydra.run.dir=PATH (hydra.sweep.dir in a multirun)."
            )
        tasks_per_node(self.job)
        if not self.job.launcher.dry_run:  # a dry run prints the job without asking any cluster
            slurm_cluster.require_sbatch()
            slurm_cluster.check_partition(self.job.launcher.partition, self.job.launcher.nodes)

    def launch(self, job_file: Path) -> int:
        if self.env is None:
            return self._submit()
        log.info("prepared %s for the %d rank(s) of SLURM job %s; each runs it as "
                 "'srun python -m scaletrain.launchers.slurm_rank %s'",
                 job_file, self.world_size, self.env.job_id, job_file)  # fmt: skip
        return 0

    def submitted_job_ids(self) -> list[str]:
        return list(self._submitted)

    def request(self, run_dir: Path, args: list[str] | None = None, after: tuple[str, ...] = ()) -> BatchRequest:
        """The batch job for ``run_dir``: the user's overrides (or ``args``), started after the jobs ``after``."""
        cfg = self.job.launcher
        extra = tuple(cfg.sbatch_args) + ((f"--dependency=afterany:{':'.join(after)}",) if after else ())
        options = sbatch_options(
            job_name=cfg.job_name,
            nodes=cfg.nodes,
            ntasks_per_node=tasks_per_node(self.job),
            gpus_per_node=cfg.gpus_per_node,
            cpus_per_task=cfg.cpus_per_task,
            mem_gb=cfg.mem_gb,
            time_min=cfg.time_min,
            partition=cfg.partition,
            account=cfg.account,
            qos=cfg.qos,
            signal=cfg.signal,
            signal_before_end_s=cfg.signal_before_end_s,
            output=str(run_dir).replace("%", "%%") + "/slurm-%j.out",  # sbatch expands %j, %u, ...; %% is a '%'
            extra=extra,
        )
        overrides = task_overrides() if args is None else args
        return BatchRequest(
            options, tuple(overrides), str(run_dir), cfg.signal, cfg.max_requeues, self.job.max_restarts
        )

    def submit(self, args: list[str] | None = None, after: tuple[str, ...] = ()) -> str | None:
        """Write the run directory's submit.sbatch and sbatch it; its job id (None in a dry run, which prints it).
        The run directory's job.json, which every task runs, is written before (run._launch; slurm_sweep.submit for
        a sweep's points)."""
        run_dir = Path(self.job.output_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        script = run_dir / "submit.sbatch"
        script.write_text(render(self.request(run_dir, args, after)))
        job_id = slurm_cluster.submit_or_print(script, self.job.launcher.dry_run)
        if job_id is not None:
            self._submitted.append(job_id)
            (run_dir / "slurm_job_id").write_text(job_id + "\n")
            log.info("submitted SLURM job %s; its log: %s (squeue -j %s, scancel %s)", job_id,
                     run_dir / f"slurm-{job_id}.out", job_id, job_id)  # fmt: skip
        return job_id

    def _submit(self) -> int:
        job_id = self.submit()
        if job_id is None or not self.job.launcher.wait:
            return 0
        return slurm_cluster.wait(job_id, Path(self.job.output_dir).resolve() / f"slurm-{job_id}.out")


PLUGIN = SlurmLauncher
