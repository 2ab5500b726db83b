"""Scaling sweeps and head-to-heads under ``launcher=slurm``: batch jobs that report by themselves.

A sweep (``scaling.device_counts``) submits one batch job per point, each sized for its world size
(``SlurmLauncher.sweep_point``) and written as the user's overrides followed by the point's own (the settings in which
the point differs from the sweep, as Hydra overrides), so every script reads as what it runs. Each point depends on
the one before (``afterany``): points never share nodes, so each measures its hardware alone, and a point that fails
or is cancelled does not hold up the next. A last, small job depends on every point and runs
``python -m scaletrain.scaling SWEEP_DIR`` on the cluster: the table, scaling.md/json/csv/png and the W&B summary
run appear without anyone keeping a login shell open, and a point without a summary is a row marked failed.
A requeued point resumes from its checkpoints as any scaletrain job does. ``launcher.wait=true`` follows the jobs
from here, streaming their logs, the table included. A dry run prints every script instead of submitting.

After a head-to-head multirun (``-m +strategy=ddp,mirrored launcher=slurm``), ``compare_after`` submits the same kind
of follow-up job: ``python -m scaletrain.compare SWEEP_DIR`` once every run's job ended.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrain.contract.config import JOB_FILE, Job
from scaletrain.contract.errors import ConfigError
from scaletrain.contract.exit_codes import ExitCode
from scaletrain.driver.launchers import slurm, slurm_cluster
from scaletrain.driver.launchers.slurm_script import render_command

if TYPE_CHECKING:
    from scaletrain.driver.scaling.sweep import Point

log = logging.getLogger("scaletrain")

_NOT_OVERRIDES = {"output_dir", "strategy_was_picked"}  # the run dir travels as hydra.run.dir; the other is derived


def submit(job: Job, points: Sequence[Point], launchers: Sequence[slurm.SlurmLauncher]) -> int:
    """Submit the points (each with its pre-flighted launcher) one after another and the analysis job after them;
    with launcher.wait, follow them all."""
    if slurm.mode(os.environ) != "submit":
        raise ConfigError(
            "a scaling sweep under launcher=slurm submits one job per world size, so it starts from a login node, "
            "not inside a SLURM job; run 'python -m scaletrain launcher=slurm scaling.device_counts=[...]' there."
        )
    sweep_dir = Path(job.output_dir).resolve()
    user = slurm.task_overrides()
    ids: list[str] = []
    for point, launcher in zip(points, launchers, strict=True):
        point_dir = Path(point.job.output_dir).resolve()
        point_dir.mkdir(parents=True, exist_ok=True)
        point.job.save_json(point_dir / JOB_FILE)  # the point's own job, which each of its tasks runs
        job_id = launcher.submit(point_args(job, point.job, user), after=tuple(ids[-1:]))
        ids.append(job_id or f"<job id of {Path(point.job.output_dir).name}>")
    cfg = job.launcher
    analysis = follow_up(sweep_dir / "analyse.sbatch", f"{cfg.job_name}-analysis", "scaletrain.driver.scaling",
                         (str(sweep_dir),), ids, _placement(cfg), cfg.dry_run)  # fmt: skip
    if analysis is None:
        return 0  # a dry run: every script was printed
    if not cfg.wait:
        log.info(
            "scaling sweep submitted: point jobs %s, then analysis job %s, which writes %s (squeue -u $USER)",
            ", ".join(ids),
            analysis,
            sweep_dir / "scaling.md",
        )
        return 0
    for job_id, point in zip(ids, points, strict=True):
        log_path = Path(point.job.output_dir).resolve() / f"slurm-{job_id}.out"
        if slurm_cluster.wait(job_id, log_path) == ExitCode.INTERRUPTED:
            return ExitCode.INTERRUPTED
    return slurm_cluster.wait(analysis, sweep_dir / f"slurm-{analysis}.out")


def follow_up(
    script: Path,
    name: str,
    module: str,
    args: tuple[str, ...],
    after: Sequence[str],
    placement: Mapping[str, str],
    dry_run: bool = False,
) -> str | None:
    """Submit ``python -m MODULE ARGS`` as a one-task job (on ``placement``'s partition, account, qos) once the jobs
    ``after`` ended, however they ended; its job id (None in a dry run, which prints the script)."""
    options: list[tuple[str, str | None]] = [("job-name", name), ("nodes", "1"), ("ntasks", "1"), *placement.items()]
    options += [("dependency", "afterany:" + ":".join(after)), ("output", str(script.parent) + "/slurm-%j.out")]
    script.write_text(render_command(tuple(options), module, args))
    return slurm_cluster.submit_or_print(script, dry_run)


def _placement(cfg: Any) -> dict[str, str]:
    """The launcher's partition, account and QOS, those that are set: where the follow-up jobs go too."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda key: getattr(cfg, key)
    return {key: str(get(key)) for key in ("partition", "account", "qos") if get(key)}


def point_args(job: Job, point: Job, user: Sequence[str]) -> list[str]:
    """The point's overrides: the user's, less those the point sets, then the point's own."""
    own = point_overrides(job, point)
    keys = {o.partition("=")[0].lstrip("+") for o in own}
    return [o for o in user if _key(o) not in keys] + own


def point_overrides(job: Job, point: Job) -> list[str]:
    """The settings in which ``point`` differs from ``job``, as Hydra overrides (key=value, values quoted)."""
    before, after = _flat(job.to_dict()), _flat(point.to_dict())
    # ++: set the key whether or not the composed YAML has it (logger=none has no logger.group, the schema does)
    return [f"++{key}={hydra_value(value)}" for key, value in after.items()
            if key not in _NOT_OVERRIDES and before.get(key, _ABSENT) != value]  # fmt: skip


_ABSENT = object()
_BARE = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_WORDS = {"true", "false", "null", "nan", "inf", "none"}  # words Hydra reads as something other than a string


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar, read back unchanged: strings quoted (OmegaConf's ``${`` escaped)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if _BARE.fullmatch(value) and value.lower() not in _WORDS:
            return value  # a path or a name reads back as itself, unquoted
        escaped = value.replace("${", "\\${")
        # a backslash is literal unless it precedes a quote or ends the string: only those are doubled
        escaped = re.sub(r"(\\*)('|$)", lambda m: m[1] * 2 + ("\\'" if m[2] else ""), escaped)
        return f"'{escaped}'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Hydra override for a {type(value).__name__}")


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _key(override: str) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([override])[0].key_or_group


def compare_after(sweep: Path, run_dirs: Sequence[Path], launcher: Mapping[str, Any]) -> str | None:
    """After a head-to-head multirun submitted under launcher=slurm: a job that writes comparison.md/.csv once
    every run's job ended; its job id (None when no run was submitted)."""
    ids = [(d / "slurm_job_id").read_text().strip() for d in run_dirs if (d / "slurm_job_id").is_file()]
    if not ids:
        return None
    name = f"{launcher.get('job_name') or 'scaletrain'}-compare"
    job_id = follow_up(
        sweep / "compare.sbatch", name, "scaletrain.driver.compare", (str(sweep),), ids, _placement(launcher)
    )
    print(f"comparison job {job_id} writes {sweep / 'comparison.md'} once jobs {', '.join(ids)} ended", flush=True)
    return job_id
