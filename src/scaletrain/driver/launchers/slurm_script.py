"""The sbatch job as data (``BatchRequest``) first, rendered to the script text second.

``render`` is pure, so a dry run prints exactly what would be submitted and a golden file pins it. The script's
logic after the ``#SBATCH`` header (``BODY``) is the same text as in the hand-written ``slurm/*.sbatch``; only a
few assignments in front of it differ. ``tests/unit/test_slurm_script.py`` keeps the two in sync.

Overrides never pass through a shell: a submitted job's ranks run the ``job.json`` its driver wrote (srun executes
python directly, on the file's path), and the rendered script carries the overrides only as a comment, JSON-escaped
so that no value can end the comment line. A hand-written script passes its own arguments as ``"$@"`` to one
``python -m scaletrain`` in the batch shell, which prepares that job.json. Nothing from the environment (secrets
such as WANDB_API_KEY) is written: the job inherits the submitter's environment through sbatch's default
``--export=ALL``.

``#SBATCH`` lines are comments to bash but sbatch parses them itself, one line each: a value there is
``shlex.quote``-d (which sbatch's own parser reads back, quotes and all) and refused by ``value_problem`` when no
quoting can carry it (a line break, a backslash, ...). ``Config.validate`` refuses such settings by name first;
``render`` refuses anything that still gets through.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from scaletrain.contract.errors import ConfigError
from scaletrain.contract.rank_env import PYTHON
from scaletrain.launchers.slurm import value_problem

# $SCALETRAIN_PYTHON and SCALETRAIN_HANG_RESTARTS below are rank_env.PYTHON and rank_env.HANG_RESTARTS (the rank
# contract's table; tests/unit/test_rank_spec.py checks that they agree).
# Exit code 75 is ExitCode.STOPPED (every rank stopped at an agreed step after a checkpoint) and 3 ExitCode.HUNG (the
# ranks hung and were ended): contract/exit_codes.py; tests/unit/test_slurm_script.py checks they agree.
BODY = """\
# ---- scaletrain's batch logic: the same in every script (driver/launchers/slurm_script.py renders it) ----
PYTHON=${SCALETRAIN_PYTHON:-python}
stop_requested=0
interrupted=0
srun_pid=
on_stop_signal() {
  stop_requested=1
  interrupted=1
  echo "scaletrain: SIG$STOP_SIGNAL received: every rank checkpoints at its next step, then the job requeues" >&2
  if [ -n "$srun_pid" ]; then kill -s "$STOP_SIGNAL" "$srun_pid" 2>/dev/null; fi
}
trap on_stop_signal "$STOP_SIGNAL"
echo "scaletrain: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NODELIST; outputs in $RUN_DIR" >&2
JOB_FILE=$RUN_DIR/job.json
# A hand-written script (PREPARE=1) has scaletrain compose and check the job once, here in the batch shell, and
# write job.json (python starts without a shell between: the overrides arrive verbatim); a requeued job runs the
# job.json its first run prepared. A submitted job's driver wrote job.json already (PREPARE=0).
if [ "$PREPARE" = 1 ] && { [ "${SLURM_RESTART_COUNT:-0}" = 0 ] || [ ! -f "$JOB_FILE" ]; }; then
  "$PYTHON" -m scaletrain "$@" launcher=slurm "hydra.run.dir=$RUN_DIR" || exit $?
fi
hang_restarts=0
while :; do
  # One srun task per rank, each running the prepared job (no task composes or checks it again).
  SCALETRAIN_HANG_RESTARTS=$hang_restarts srun --kill-on-bad-exit=1 "$PYTHON" -m scaletrain.rank.slurm_rank \\
    "$JOB_FILE" &
  srun_pid=$!
  # A signal that arrived between starting srun and learning its pid found no pid to forward to: forward it now.
  if [ "$stop_requested" = 1 ]; then kill -s "$STOP_SIGNAL" "$srun_pid" 2>/dev/null; fi
  while :; do
    interrupted=0
    wait "$srun_pid"
    code=$?
    # The trap cuts `wait` short (status > 128) while srun still runs: wait again for its real exit code.
    if [ "$interrupted" = 1 ] && [ "$code" -gt 128 ]; then continue; fi
    break
  done
  # The ranks hung and the watchdog ended them (hang_report.md): exit code 3, and restart them from the last
  # checkpoint while max_restarts allows. (srun reports the highest of its tasks' codes: the marker tells.)
  # (Beacons are kept per job id, which a requeue keeps: a later job in the same run directory has its own.)
  hung_marker="$RUN_DIR/beacons/job_$SLURM_JOB_ID/attempt_$((${SLURM_RESTART_COUNT:-0} + hang_restarts))/hung"
  if [ -f "$hung_marker" ]; then code=3; fi
  if [ "$code" = 3 ] && [ "$stop_requested" = 0 ] && [ "$hang_restarts" -lt "$MAX_RESTARTS" ]; then
    hang_restarts=$((hang_restarts + 1))
    echo "scaletrain: the ranks hung (see $RUN_DIR/hang_report.md); restarting them from the last checkpoint" \\
      "(restart $hang_restarts of $MAX_RESTARTS)" >&2
    continue
  fi
  break
done
if [ "$code" = 0 ]; then exit 0; fi
if [ "$code" != 75 ] && [ "$stop_requested" = 0 ]; then
  echo "scaletrain: the job step failed with exit code $code; not requeueing" >&2
  exit "$code"
fi
code=75  # the ranks stopped on request (srun reports 143 when it ended ranks after the first one exited)
restarts=${SLURM_RESTART_COUNT:-0}
resume_hint="submit again with resume=true and the run directory $RUN_DIR to continue from its last checkpoint"
if [ "$restarts" -ge "$MAX_REQUEUES" ]; then
  echo "scaletrain: error: job $SLURM_JOB_ID was requeued $restarts times already (max $MAX_REQUEUES); $resume_hint" >&2
  exit "$code"
fi
if ! command -v scontrol >/dev/null 2>&1; then
  echo "scaletrain: error: scontrol is not on PATH inside the job, so it cannot requeue itself; $resume_hint" >&2
  exit "$code"
fi
echo "scaletrain: requeueing job $SLURM_JOB_ID (restart $((restarts + 1)) of at most $MAX_REQUEUES)" >&2
if ! scontrol requeue "$SLURM_JOB_ID"; then
  echo "scaletrain: error: 'scontrol requeue $SLURM_JOB_ID' failed; $resume_hint" >&2
  exit "$code"
fi
exit 0
"""


@dataclass(frozen=True)
class BatchRequest:
    """One sbatch submission as data: its options in order, then what the script runs."""

    options: tuple[tuple[str, str | None], ...]  # ("nodes", "2") -> #SBATCH --nodes=2; ("requeue", None) -> --requeue
    args: tuple[str, ...]  # scaletrain's overrides: what the driver composed job.json from, shown in a comment
    run_dir: str  # hydra.run.dir of every task and every requeued run: where the checkpoints stay
    signal: str  # the warning signal (USR1): SLURM sends it to the batch shell before the time limit
    max_requeues: int
    max_restarts: int = 0  # restarts of hung ranks within the allocation (exit code 3: the hang watchdog)

    @property
    def option_args(self) -> list[str]:
        return [f"--{key}" if value is None else f"--{key}={value}" for key, value in self.options]


def sbatch_options(
    *,
    job_name: str,
    nodes: int,
    ntasks_per_node: int,
    gpus_per_node: int = 0,
    cpus_per_task: int | None = None,
    mem_gb: int | None = None,
    time_min: int | None = None,
    partition: str | None = None,
    account: str | None = None,
    qos: str | None = None,
    signal: str = "USR1",
    signal_before_end_s: int = 180,
    output: str = "slurm-%j.out",
    extra: tuple[str, ...] = (),
) -> tuple[tuple[str, str | None], ...]:
    """The #SBATCH options for these settings, in a fixed order (units in the names: mem_gb, time_min)."""
    wanted: list[tuple[str, object]] = [
        ("job-name", job_name),
        ("nodes", nodes),
        ("ntasks-per-node", ntasks_per_node),
        ("gpus-per-node", gpus_per_node or None),
        ("cpus-per-task", cpus_per_task),
        ("mem", f"{mem_gb}G" if mem_gb else None),
        ("time", time_min),
        ("partition", partition),
        ("account", account),
        ("qos", qos),
        # B: the batch shell gets the warning, forwards it to the ranks and requeues the job once they stopped.
        ("signal", f"B:{signal}@{signal_before_end_s}"),
        ("requeue", True),
        ("open-mode", "append"),  # a requeued run appends to the same log instead of truncating it
        ("output", output),
    ]
    options = [(key, None if value is True else str(value)) for key, value in wanted if value is not None]
    for item in extra:
        key, sep, value = item.removeprefix("--").partition("=")
        options.append((key, value if sep else None))
    return tuple(options)


def render(request: BatchRequest) -> str:
    """The batch script for ``request``: header, the few per-job assignments, then BODY."""
    lines = _header(request.options, (*request.args, request.run_dir), "python -m scaletrain launcher=slurm ...")
    lines += [
        "",
        f"RUN_DIR={shlex.quote(request.run_dir)}",
        f"STOP_SIGNAL={shlex.quote(request.signal)}  # the signal of --signal=B:...",
        f"MAX_REQUEUES={int(request.max_requeues)}",
        f"MAX_RESTARTS={int(request.max_restarts)}",
        "PREPARE=0  # the driver wrote $RUN_DIR/job.json: " + overrides_comment(request.args),
        "",
    ]
    return "\n".join(lines) + "\n" + BODY


def overrides_comment(args: tuple[str, ...]) -> str:
    """The overrides on one comment line, for a reader: as a JSON list, whose escapes keep a line break in a value
    from ending the comment (the job runs job.json, never these)."""
    return "its overrides were " + json.dumps(list(args))


def render_command(options: tuple[tuple[str, str | None], ...], module: str, args: tuple[str, ...]) -> str:
    """A batch script that runs ``python -m MODULE ARGS...`` once in the batch shell (a sweep's analysis, a
    head-to-head's comparison): quoted as ``render`` quotes, no srun, no requeue."""
    lines = _header(options, args, f"python -m {module}")
    lines += [
        "",
        "set -- " + " ".join(shlex.quote(arg) for arg in args),
        f'exec "${{{PYTHON}:-python}}" -m {module} "$@"',
    ]
    return "\n".join(lines) + "\n"


def _header(options: tuple[tuple[str, str | None], ...], args: tuple[str, ...], what: str) -> list[str]:
    """The shebang and the #SBATCH lines; refuses a value sbatch would not read back, or an argument with a NUL."""
    for key, value in options:
        if value is not None and (problem := value_problem(value)):
            raise ConfigError(f"#SBATCH --{key}={value!r} cannot be written: it {problem}; change the setting.")
    if any("\0" in arg for arg in args):
        raise ConfigError(
            "an override or the run directory holds a NUL character, which a script cannot carry; remove it."
        )
    lines = ["#!/bin/bash", f"# Rendered by scaletrain's launcher=slurm ({what})."]
    for key, value in options:
        lines.append(f"#SBATCH --{key}" if value is None else f"#SBATCH --{key}={shlex.quote(value)}")
    return lines


def sbatch_refusal(script: Path, stderr: str, stdout: str, returncode: int) -> str:
    """The error for a refused submission: sbatch's own message lines (not its usage hint) in one sentence."""
    lines = [line.strip().rstrip(".") for line in (stderr.strip() or stdout).splitlines() if line.strip()]
    own = [line for line in lines if line.startswith("sbatch:")]
    why = own or [line for line in lines if not line.startswith("Try ")] or [f"exit code {returncode}"]
    return (
        f"sbatch refused {script}: {'; '.join(why)}; fix what it names (a launcher setting or "
        "launcher.sbatch_args) and submit again, or print the job with launcher.dry_run=true."
    )
