"""Every exit code a scaletrain process ends with, for the driver, a rank and a SLURM batch script alike.

The batch script's shell text (driver/launchers/slurm_script.py BODY, slurm/*.sbatch) spells HUNG and STOPPED as
numbers; tests/unit/test_slurm_script.py checks they agree with this table.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a rank crashed (Python's own code for an uncaught exception)
    BAD_INPUT = 2  # a wrong setting, a missing file, an unreachable cluster: one sentence, nothing started
    HUNG = 3  # the hang watchdog ended ranks that stopped advancing (docs/operations.md "Hangs")
    NONFINITE = 4  # the loss became NaN or infinite under train.on_nonfinite=stop
    STOPPED = 75  # sysexits' EX_TEMPFAIL: every rank stopped at an agreed step after a checkpoint; resume from it
    INTERRUPTED = 130  # the user pressed Ctrl-C (128 + SIGINT)
