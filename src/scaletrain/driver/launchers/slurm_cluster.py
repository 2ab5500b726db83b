"""Talking to SLURM from the submitting host: pre-flight probes, sbatch, and waiting with the log streamed.

Every call is a plain SLURM command (sinfo, sbatch, squeue, sacct, scontrol) with a timeout, so nothing here
needs a Python binding and the same code runs against any SLURM version that has these commands.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scaletrain.contract.errors import ConfigError, LaunchError
from scaletrain.contract.exit_codes import ExitCode
from scaletrain.contract.rank_env import PYTHON
from scaletrain.driver.launchers.slurm_script import sbatch_refusal

log = logging.getLogger("scaletrain")
TIMEOUT_S = 30


@dataclass(frozen=True)
class Partition:
    name: str
    nodes: int
    default: bool


def _run(argv: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise LaunchError(
            f"'{' '.join(argv)}' got no answer within {TIMEOUT_S} s; check that the SLURM controller is up (sinfo)."
        ) from None
    except OSError as exc:
        raise LaunchError(f"'{argv[0]}' could not be run ({exc.strerror}); check the SLURM client install.") from None


def require_sbatch() -> str:
    path = shutil.which("sbatch")
    if path is None:
        raise LaunchError(
            "sbatch was not found on PATH, so launcher=slurm cannot submit; run this on a SLURM login node "
            "(or put SLURM's bin directory on PATH), or add launcher.dry_run=true to only print the job."
        )
    return path


def partitions() -> list[Partition]:
    """The cluster's partitions with their node counts, from `sinfo -s` (the default one carries a '*')."""
    if shutil.which("sinfo") is None:
        raise LaunchError("sinfo was not found on PATH next to sbatch; check the SLURM client install.")
    done = _run(["sinfo", "-h", "-s", "-o", "%P|%F"])
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LaunchError(f"sinfo could not list the partitions ({why}); check that the SLURM controller is up.")
    found = []
    for line in done.stdout.splitlines():
        name, _, counts = line.strip().partition("|")
        if not name:
            continue
        total = counts.split("/")[-1]  # allocated/idle/other/total
        found.append(Partition(name.rstrip("*"), int(total) if total.isdigit() else 0, name.endswith("*")))
    return found


def check_partition(partition: str | None, nodes: int) -> None:
    """The partition exists (or there is a default one) and has at least ``nodes`` nodes."""
    known = partitions()
    if partition is None:
        chosen = next((p for p in known if p.default), None)
        if chosen is None:
            raise ConfigError(
                f"this cluster has no default partition; set launcher.partition to one of: {_names(known)}."
            )
        where = f"the default partition {chosen.name}"
    else:
        chosen = next((p for p in known if p.name == partition), None)
        if chosen is None:
            raise ConfigError(
                f"launcher.partition={partition} does not exist on this cluster; choose one of: {_names(known)}."
            )
        where = f"partition {chosen.name}"
    if nodes > chosen.nodes:
        raise ConfigError(
            f"launcher.nodes={nodes} is more than the {chosen.nodes} node(s) of {where}; "
            f"ask for at most {chosen.nodes} or choose a bigger partition."
        )


def _names(known: list[Partition]) -> str:
    return ", ".join(p.name for p in known) or "(sinfo lists none)"


def submit_or_print(script: Path, dry_run: bool) -> str | None:
    """sbatch ``script`` with this Python named in the job's environment; its job id. A dry run prints the script
    and the command instead and returns None."""
    env = dict(os.environ)
    env.setdefault(PYTHON, sys.executable)  # the job inherits it (sbatch exports everything)
    if dry_run:
        log.info(
            "dry run, nothing submitted: 'sbatch --parsable %s' would submit this script, with %s=%s in its "
            "environment:",
            script,
            PYTHON,
            env[PYTHON],
        )
        sys.stdout.write(script.read_text())
        sys.stdout.flush()
        return None
    return submit(script, env)


def submit(script: Path, env: Mapping[str, str]) -> str:
    """sbatch the script; returns the job id."""
    done = _run([require_sbatch(), "--parsable", str(script)], env=env)
    if done.returncode != 0:
        raise LaunchError(sbatch_refusal(script, done.stderr, done.stdout, done.returncode))
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise LaunchError(f"sbatch answered {done.stdout.strip()!r} instead of a job id.")
    return job_id


def queue_state(job_id: str, unknown: str = "") -> str:
    """The job's state in squeue (PENDING, RUNNING, ...), or '' once it has left the queue; ``unknown`` when squeue
    failed for another reason than not knowing the job (the controller unreachable)."""
    done = _run(["squeue", "-h", "-j", job_id, "-o", "%T"])
    if done.returncode == 0:
        return done.stdout.strip()
    return "" if "Invalid job id" in done.stderr else unknown


def final_state(job_id: str, settle_s: float = 15.0) -> tuple[str, str]:
    """(state, exit code) of an ended job, from sacct when accounting is on, else from scontrol."""
    deadline = time.monotonic() + settle_s
    query = ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State,ExitCode"]
    while True:
        done = _run(query) if shutil.which("sacct") else None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            state, _, code = done.stdout.strip().splitlines()[-1].partition("|")
            if state not in ("RUNNING", "PENDING", "REQUEUED", "COMPLETING") or time.monotonic() > deadline:
                return state.split()[0], code
        elif done is None or "accounting storage is disabled" in done.stderr + done.stdout:
            break  # sacct will never know the job (AccountingStorageType=accounting_storage/none): ask scontrol
        elif time.monotonic() > deadline:
            break
        time.sleep(0.5)
    fields = dict(
        item.split("=", 1) for item in _run(["scontrol", "show", "job", job_id]).stdout.split() if "=" in item
    )
    return fields.get("JobState", "UNKNOWN"), fields.get("ExitCode", "?")


def wait(job_id: str, log_path: Path, poll_s: float = 1.0) -> int:
    """Follow the job until it leaves the queue (requeues included), streaming its log; 0 if it completed."""
    offset = 0
    try:
        while True:
            in_queue = queue_state(job_id)
            offset = _stream(log_path, offset)
            if not in_queue:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        print(f"scaletrain: stopped waiting; job {job_id} keeps running (scancel {job_id} stops it)", file=sys.stderr)
        return ExitCode.INTERRUPTED
    _stream(log_path, offset)
    state, code = final_state(job_id)
    if state == "COMPLETED":
        log.info("job %s completed", job_id)
        return 0
    log.error("job %s ended %s (exit code %s); its log: %s", job_id, state, code, log_path)
    return 1


def _stream(path: Path, offset: int) -> int:
    """Copy what was appended to ``path`` since ``offset`` to stdout; returns the new offset."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return offset
    if size <= offset:
        return offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read(size - offset)
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return offset + len(chunk)
