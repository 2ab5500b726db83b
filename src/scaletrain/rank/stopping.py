"""The "stop requested" seam: a signal (SLURM's warning before the time limit or a preemption) sets a flag that
training loops read at step boundaries; they then checkpoint and the rank exits with ``ExitCode.STOPPED``
(contract/exit_codes.py).

The flag is process-local and set from a signal handler, so reading it costs one attribute lookup. Ranks agree on
the stopping step through ``RunContext.should_stop``, which every rank calls at the same steps.
"""

from __future__ import annotations

import signal

from scaletrain.contract.errors import ConfigError

DEFAULT_SIGNAL = "USR1"
SIGNALS = ("USR1", "USR2")  # not TERM/INT: launchers use those to stop ranks for good

_requested = False  # set from a signal handler: a plain bool, no lock a handler could deadlock on


def signal_number(name: str) -> signal.Signals:
    """``USR1`` or ``SIGUSR1`` -> signal.SIGUSR1; anything else is a ConfigError naming the choices."""
    short = name.upper().removeprefix("SIG")
    if short not in SIGNALS:
        raise ConfigError(f"stop signal {name!r} is not supported; use one of: {', '.join(SIGNALS)}.")
    return signal.Signals[f"SIG{short}"]


def install(name: str = DEFAULT_SIGNAL) -> signal.Signals:
    """From now on, ``name`` asks this process to stop at the next step boundary instead of killing it."""
    number = signal_number(name)
    signal.signal(number, _handler)
    return number


def _handler(signum: int, frame: object) -> None:
    request()


def request() -> None:
    """Ask for a stop from code (tests, a user's own watchdog): the same as receiving the signal."""
    global _requested
    _requested = True


def requested() -> bool:
    """True once a stop was asked for in this process."""
    return _requested


def reset() -> None:
    global _requested
    _requested = False
