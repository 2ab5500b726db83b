"""What every rank runs: ``python -m scaletrain.rank.worker JOB_JSON``, or ``--exec SCRIPT ARGS...`` for scripts."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

from scaletrain.contract import rank_env
from scaletrain.contract.errors import ScaletrainError
from scaletrain.contract.exit_codes import ExitCode

log = logging.getLogger("scaletrain")
_exit_without_finalization = False  # set by run() from the strategy


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its launcher dies, so no rank outlives the job."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the launcher's own cleanup still applies
        pass


def _setup_logging(rank: int) -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=logging.INFO if rank == 0 else logging.WARNING)


def _start_beacon(directory: Path, rank: int):
    """This rank's progress beacon, and its stack dumped into the same directory on the watchdog's signal."""
    import faulthandler

    from scaletrain.common.watchdog import DUMP_SIGNAL
    from scaletrain.contract.beacon import Beacon

    beacon = Beacon(directory, rank)
    stacks = open(directory / f"stack_rank_{rank}.txt", "w")  # noqa: SIM115  (open for the process's lifetime)
    faulthandler.register(DUMP_SIGNAL, file=stacks, all_threads=True, chain=False)
    return beacon


def _note_failure(beacon_dir: str | None, rank: int, exc: BaseException) -> None:
    """Beside the beacon, how this rank failed (scaletrain.contract.failure), for the launcher to name the cause."""
    if beacon_dir:
        from scaletrain.contract import failure

        failure.write(Path(beacon_dir), rank, exc)


def train(ctx) -> dict | None:
    """Train the job's workload on this rank: the training driver with the framework's stepper, or a user function
    that drives itself. Returns the figures for summary.json (None: a resume found nothing left to train, and the
    finished run's summary stays as it is)."""
    from scaletrain.contract import registry

    workload = registry.workload(ctx.job.workload.name)
    if workload.trains_itself:
        return workload.run(ctx)
    framework = ctx.strategy.framework
    task = workload.build(framework, ctx.job.workload, ctx.job.seed)  # pre-flight checked it builds for framework
    if framework == "torch":
        from scaletrain.rank.loops.torch_stepper import TorchStepper as Stepper
    else:
        from scaletrain.rank.loops.tf_stepper import TFStepper as Stepper
    from scaletrain.rank.loops import driver

    return driver.train(ctx, Stepper(ctx, task))


def run(job_file: str) -> int:
    from scaletrain.contract import config
    from scaletrain.contract.env import detect
    from scaletrain.rank import stopping, strategies
    from scaletrain.rank.context import RunContext

    env = detect(os.environ)
    _setup_logging(env.rank)
    stopping.install(os.environ.get(rank_env.STOP_SIGNAL, stopping.DEFAULT_SIGNAL))
    job = config.load_json(job_file)
    restart_count = int(os.environ.get(rank_env.RESTART_COUNT, "0"))
    strategy = strategies.create(job.strategy, env)
    global _exit_without_finalization
    _exit_without_finalization = strategy.exit_without_finalization
    ctx = RunContext(job, env, strategy, restart_count)
    beacon_dir = os.environ.get(rank_env.BEACON_DIR)
    if beacon_dir:  # the launcher's hang watchdog reads it
        ctx.beacon = _start_beacon(Path(beacon_dir), env.rank)
    code = 1
    try:
        strategy.setup()
        summary = train(ctx)
        if ctx.stopped_at_step is None and summary is not None:  # None: nothing was left to train
            ctx.write_summary(summary)
        # Nobody leaves the group while a peer still talks to it: gloo aborts the process if that happens.
        # After a stop it also holds every rank until rank 0's checkpoint is on disk.
        strategy.barrier()
        code = 0 if ctx.stopped_at_step is None else ExitCode.STOPPED
    except ScaletrainError as exc:  # a sentence every rank reaches alike (bad input, a diverged loss): no note
        if env.rank == 0 or not getattr(exc, "rank_zero_only", False):  # the same sentence on every rank: say it once
            log.error("scaletrain: error: %s", exc)
        code = exc.exit_code
    except Exception as exc:  # Python prints the traceback; the note tells the launcher what kind of failure it was
        _note_failure(beacon_dir, env.rank, exc)
        raise
    finally:
        ctx.close(code)
        ctx.beacon.close()
        strategy.teardown()
    if code == ExitCode.STOPPED:
        log.info("stopped at step %d on request: exit code %d (resumable)", ctx.stopped_at_step, ExitCode.STOPPED)
        return ExitCode.STOPPED
    return code


def _run_script(argv: list[str], beacon_dir: Path) -> int:
    """Run an unmodified script as ``python SCRIPT ARGS`` would (its directory first on sys.path, run as __main__),
    with this rank's beacon (host, pid, no steps: a script marks none) and its stack dumped on the watchdog's signal,
    so the watchdog can name a frozen rank of a script too."""
    import runpy

    beacon = _start_beacon(beacon_dir, int(os.environ.get(rank_env.RANK, "0")))
    beacon.at("script")
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
    code: object = 0
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    finally:
        beacon.close()
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)  # sys.exit("message"), as the interpreter would print it
    return 1


def main(argv: list[str]) -> int:
    _die_with_parent()
    if argv[:1] == ["--exec"]:
        if os.environ.get(rank_env.BEACON_DIR):  # watched: run it here, beside a beacon and a stack dump
            return _run_script(argv[1:], Path(os.environ[rank_env.BEACON_DIR]))
        # The parent-death signal survives exec, so an unmodified script inherits it.
        os.execv(sys.executable, [sys.executable, *argv[1:]])
    if len(argv) != 1:
        print("usage: python -m scaletrain.rank.worker JOB_JSON | --exec SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    return run(argv[0])


if __name__ == "__main__":
    exit_code = main(sys.argv[1:])
    if not _exit_without_finalization:
        sys.exit(exit_code)
    # Every output is written, flushed and closed and the process group destroyed by now (rank/strategies/base.py).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
