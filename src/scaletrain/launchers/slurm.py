"""launcher=slurm's settings (``launcher.*``): the #SBATCH request, requeues and the stop signal. A job's tasks
read them from job.json too (rank/slurm_rank.py: the stop signal). The launcher itself is driver/launchers/slurm.py
(``LAUNCHER``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scaletrain.contract.errors import ConfigError
from scaletrain.rank import stopping

LAUNCHER = "scaletrain.driver.launchers.slurm"  # its PLUGIN: the Launcher class, imported where the user submits
_OPTION = re.compile(r"--[a-z][a-z0-9-]*(=.+)?")
# Options scaletrain writes itself; an extra one of these would silently fight the rendered value.
_MANAGED = {"job-name", "nodes", "ntasks-per-node", "gpus-per-node", "cpus-per-task", "mem", "time", "partition"}
_MANAGED |= {"account", "qos", "signal", "requeue", "open-mode", "output"}
# The string settings written on #SBATCH lines, with a value each would accept, for the error message.
_NAMED = {"job_name": "train", "partition": "gpu", "account": "myproject", "qos": "normal"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,-]*")  # partitions, accounts, QOS: SLURM names (',' lists partitions)


def value_problem(value: str, *, name: bool = False) -> str | None:
    """Why sbatch would not read ``value`` back unchanged from a ``#SBATCH --key=value`` line; None if it would."""
    if not value:
        return "is empty"
    if not value.isprintable():
        return "holds a control character (a line break, carriage return, tab or NUL)"
    if value.startswith("-"):
        return "starts with '-'"
    if "\\" in value:
        return "holds a backslash, which sbatch drops as an escape"
    for word in ("hetjob", "packjob"):  # sbatch looks for these anywhere in the line, in any case
        if word in value.lower():
            return f"holds '{word}', which sbatch takes as the start of another job component"
    if name and not _NAME.fullmatch(value):
        return "holds characters other than letters, digits, '_', '.', '-' and ','"
    return None


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
