"""``launcher=slurm``: on a login node, render the sbatch job and submit it; in the batch shell, prepare the job.

Where ``python -m scaletrain launcher=slurm ...`` runs decides what it does:

- outside any job (``submit``): compose and pre-flight the job against the cluster, write ``job.json`` into the run
  directory, render the batch script (``slurm_script``), ``sbatch`` it, report the job id, and optionally wait while
  streaming its log (``launcher.wait``). ``launcher.dry_run`` prints the script instead of submitting it.
- in a batch shell but not a job step (``prepare``: a hand-written ``sbatch slurm/ddp.sbatch ARGS``): the same
  pre-flight with the allocation's placement, then ``job.json`` is written and the run directory handed to this
  SLURM job; nothing is started (the script then runs the ranks with srun).
- in an srun task: refused. Each task is a rank and runs ``python -m scaletrain.rank.slurm_rank job.json``
  (``slurm_rank``), which reads the job the driver prepared: no task composes or checks it again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from scaletrain import strategies
from scaletrain.contract.config import Job
from scaletrain.contract.env import ClusterEnv, slurm_allocation
from scaletrain.contract.errors import ConfigError, LaunchError
from scaletrain.driver.launchers import slurm_cluster
from scaletrain.driver.launchers.base import Launcher
from scaletrain.driver.launchers.slurm_script import BatchRequest, render, sbatch_options
from scaletrain.launchers.slurm import Config, value_problem
from scaletrain.strategies.plugin import Placement

log = logging.getLogger("scaletrain")

# Overrides that only concern the submitting process; the script appends launcher=slurm itself.
_SUBMIT_ONLY = re.compile(r"\s*(launcher\s*=\s*slurm|launcher\.(dry_run|wait)\s*=.*)\s*$")


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
    Config = Config

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
                f"scaling.device_counts holds {world_size}, which is not a whole number of nodes of {per_node} task(s) "
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
                "not in each srun task; the ranks run 'srun python -m scaletrain.rank.slurm_rank RUN_DIR/job.json'"
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
                 "'srun python -m scaletrain.rank.slurm_rank %s'",
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
