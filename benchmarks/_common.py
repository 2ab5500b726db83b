"""Shared by the benchmark scripts: clean subprocess runs, interleaved repeats, medians and markdown tables.

Conventions (see RESULTS.md): every figure is the median over repeats; the alternatives are run interleaved,
A B then B A (so neither always goes first and slow drift of a shared machine cancels); a ratio is taken
within one round (A and B measured back to back) and the median of those per-round ratios is reported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the checkout: the scaletrain CLI finds conf/ from here
BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable

# Variables that would make a child believe it is already a rank of some job.
_JOB_VARS = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SCALETRAIN_PROGRESS",
    "SCALETRAIN_RESTART_COUNT",
)


def parse_args(
    description: str,
    repeats: int,
    quick_repeats: int,
    extra: Callable[[argparse.ArgumentParser], Any] | None = None,
) -> argparse.Namespace:
    """--repeats N and --quick for every benchmark; ``extra`` adds a script's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, help=f"rounds per alternative (default {repeats})")
    parser.add_argument("--quick", action="store_true", help=f"~30 s: {quick_repeats} rounds, fewer steps")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = quick_repeats if args.quick else repeats
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def bench_env(omp_threads: int) -> dict[str, str]:
    """This environment minus job variables, plus an explicit OMP_NUM_THREADS shared by the alternatives."""
    env = {k: v for k, v in os.environ.items() if k not in _JOB_VARS}
    env["OMP_NUM_THREADS"] = str(omp_threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Ran:
    output: str  # stdout and stderr together
    started_unix_s: float  # time.time() just before the process was started
    wall_s: float  # until it exited


def run(cmd: Sequence[str], env: Mapping[str, str], timeout_s: float = 600) -> Ran:
    """Run ``cmd`` from the checkout and wait for it; RuntimeError with its last lines when it fails."""
    started_unix_s, started = time.time(), time.perf_counter()
    proc = subprocess.run(
        list(cmd),
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout_s,
        text=True,
        errors="replace",
    )
    wall_s = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-20:])
        raise RuntimeError(f"exit code {proc.returncode}: {shlex.join(cmd)}\n{tail}")
    return Ran(proc.stdout, started_unix_s, wall_s)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


Trial = Callable[[int], dict[str, float]]  # round index -> the figures of one run


def interleave(
    trials: Mapping[str, Trial], repeats: int, warmup: bool = False, quiet: bool = True
) -> dict[str, list[dict[str, float]]]:
    """Each trial once per round, A B in even rounds and B A in odd ones; the figures per trial, per round.

    ``warmup``: first run each trial once, untimed, so no alternative pays for a cold page cache.
    ``quiet``: before every run, wait (a little) for other processes to leave the CPUs idle: wait_for_quiet.
    """
    results: dict[str, list[dict]] = {name: [] for name in trials}
    names = list(trials)
    if warmup:
        for name in names:
            log(f"  warm-up {name}: {_brief(trials[name](-1))}")
    for i in range(repeats):
        for name in names if i % 2 == 0 else reversed(names):
            if quiet:
                wait_for_quiet()
            started = time.perf_counter()
            results[name].append(trials[name](i))
            took = time.perf_counter() - started
            log(f"  round {i + 1}/{repeats} {name}: {_brief(results[name][-1])} ({took:.1f} s)")
    return results


def cpu_busy(sample_s: float = 0.5) -> float:
    """Fraction of all CPUs busy over ``sample_s`` (from /proc/stat; 0.0 where there is none)."""

    def read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]) - idle, sum(fields[:8])

    try:
        busy0, total0 = read()
        time.sleep(sample_s)
        busy1, total1 = read()
    except OSError:
        return 0.0
    return (busy1 - busy0) / max(1, total1 - total0)


QUIET_BUSY = 0.25  # other processes may use up to this share of the CPUs when a run starts
QUIET_WAIT_S = 10.0


def wait_for_quiet(max_busy: float = QUIET_BUSY, limit_s: float = QUIET_WAIT_S) -> None:
    """On a shared machine: wait until other processes leave the CPUs (nearly) idle, at most ``limit_s``.

    Called between runs, so our own processes are not running. It cannot stop others starting mid-run;
    the interleaving and medians deal with that.
    """
    started = time.monotonic()
    busy = cpu_busy()
    while busy > max_busy and time.monotonic() - started < limit_s:
        busy = cpu_busy(2.0)
    waited = time.monotonic() - started
    if waited > 1.0:
        note = "" if busy <= max_busy else f", gave up at {busy:.0%} busy"
        log(f"  (waited {waited:.0f} s for other processes to quiet down{note})")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratios(a: Sequence[dict], b: Sequence[dict], key: str) -> list[float]:
    """a[i][key] / b[i][key] per round: each ratio compares two runs made back to back."""
    return [x[key] / y[key] for x, y in zip(a, b, strict=True)]


def paired_ratio(a: Sequence[dict], b: Sequence[dict], key: str) -> float:
    """The median over rounds of the per-round ratios."""
    return median(ratios(a, b, key))


def one_rank_summary(overrides: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """The summary.json of ``python -m scaletrain workload=synthetic launcher.nproc_per_node=1 OVERRIDES`` run in a
    scratch directory (one rank: what the single-process benchmarks compare two ways)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as out:
        argv = [PYTHON, "-m", "scaletrain", "workload=synthetic", "launcher.nproc_per_node=1", f"hydra.run.dir={out}"]
        run([*argv, *overrides], env)
        return read_json(Path(out) / "summary.json")


def step_and_loss_row(name: str, a: Sequence[dict], b: Sequence[dict]) -> list[Any]:
    """[name, a's and b's median ms per step, b / a per round (median and range), a's and b's median final loss]: the
    row of a benchmark that runs the same training two ways (``step_time_s`` and ``final_loss`` per round)."""
    per_round = ratios(b, a, "step_time_s")
    return [
        name,
        1e3 * median([f["step_time_s"] for f in a]),
        1e3 * median([f["step_time_s"] for f in b]),
        median(per_round),
        spread(per_round),
        median([f["final_loss"] for f in a]),
        median([f["final_loss"] for f in b]),
    ]


def spread(values: Sequence[float]) -> str:
    return f"{min(values):.4g}–{max(values):.4g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats are shown with 4 significant digits."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def verdict(ratio: float, target: float) -> str:
    if ratio <= target:
        return f"met (≤ {target:g})"
    return f"MISSED by {100 * (ratio / target - 1):.1f}% (target ≤ {target:g})"


def machine() -> str:
    import platform
    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    python = platform.python_version()
    return f"{os.cpu_count()} CPUs ({cpu}), Python {python}, torch {version('torch')}, no GPU"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _brief(figures: dict[str, float]) -> str:
    return ", ".join(f"{k}={_cell(v)}" for k, v in figures.items())


def _cell(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plain_loop_args(model: Any, num_samples: int, steps: int, window: int, out: str) -> list[str]:
    """The hand-written loops' arguments (plain_train.py, plain_tf_train.py) for ``model``: the same data, optimizer
    (SGD, lr 0.05, momentum 0.9) and seed as the scaletrain side of every loop benchmark."""
    return [
        f"--num-samples={num_samples}",
        f"--input-dim={model.input_dim}",
        f"--width={model.width}",
        f"--depth={model.depth}",
        "--num-classes=10",
        f"--batch-size={model.batch}",
        "--lr=0.05",
        "--momentum=0.9",
        "--seed=0",
        f"--steps={steps}",
        f"--window={window}",
        f"--out={out}",
    ]


def scaletrain_loop_overrides(model: Any, num_samples: int, steps: int, window: int) -> list[str]:
    """scaletrain's overrides for the same training as ``plain_loop_args`` (the strategy, launcher and output
    directory are the caller's). ``train.max_steps`` is what ends the run; the epochs only have to be enough."""
    return [
        f"train.max_steps={steps}",
        f"train.epochs={math.ceil(steps * model.batch / num_samples) + 1}",
        f"train.global_batch_size={model.batch}",
        "train.optimizer=sgd",
        "train.lr=0.05",
        "train.momentum=0.9",
        f"train.log_every_n_steps={window}",
        "checkpoint.every_n_steps=0",
        "seed=0",
        f"workload.num_samples={num_samples}",
        f"workload.input_dim={model.input_dim}",
        f"workload.width={model.width}",
        f"workload.depth={model.depth}",
        "workload.num_classes=10",
    ]
