"""Stragglers, made for real: one rank slowed from inside (a sleep in its step, or in its data) and one stopped from
outside half of the time (SIGSTOP/SIGCONT). The slow rank, and only it, is named in summary.json, metrics.jsonl,
the progress line and W&B; an undisturbed run names nobody (and tests/conftest.py checks every run of the suite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import EXPECTS_STRAGGLER, beacon_path, child_env, scaletrain_argv
from wandb_files import offline_runs, read_run

from scaletrain.rank.stragglers import BLOCK_S

pytestmark = [pytest.mark.slow, pytest.mark.alone]  # slowdowns are measured: no other test beside them

USERLAND = Path(__file__).parent / "userland"
SLOW_RANK = ("workload=function", "workload.fn._target_=slow_rank.main", "train.global_batch_size=64")
# 150 steps: the first window, then at least three blocks of half a second to judge (stragglers.BLOCK_S)
TWO_RANKS = ("launcher.nproc_per_node=2", "train.log_every_n_steps=10", "train.max_steps=150", "train.epochs=10")


def _named(summary: dict) -> list[int]:
    return [s["rank"] for s in summary["stragglers"]]


@pytest.mark.parametrize(
    "strategy, phase",
    [
        pytest.param("ddp", "compute", id="ddp-compute"),
        pytest.param("mirrored", "data", id="mirrored-data", marks=pytest.mark.tf),
    ],
)
def test_a_rank_slowed_from_inside_is_named_everywhere(scaletrain, tmp_path: Path, strategy: str, phase: str) -> None:
    (tmp_path / EXPECTS_STRAGGLER).touch()
    run = scaletrain(f"+strategy={strategy}", *SLOW_RANK, *TWO_RANKS, "+workload.fn.sleep_s=0.02",
                     f"+workload.fn.phase={phase}", "logger=wandb", env={"PYTHONPATH": str(USERLAND),
                     "WANDB_MODE": "offline"})  # fmt: skip
    assert run.returncode == 0, run.output
    assert _named(run.summary) == [1]
    assert run.summary["stragglers"][0]["slowdown"] > 3  # a 20 ms sleep on steps of a few ms
    assert run.summary["stragglers"][0]["host"]
    named = [m for m in run.metrics if "stragglers" in m]
    assert named and all([s["rank"] for s in m["stragglers"]] == [1] for m in named)
    assert "straggler at step" in run.output and "straggler: rank 1 on" in run.output
    own = [m["own_step_time_s"] for m in run.metrics if "own_step_time_s" in m]
    assert own and all(o["rank_1"] > o["rank_0"] for o in own[1:])
    (path,) = offline_runs(run.dir)
    wandb_run = read_run(path)
    charted = [h for h in wandb_run.history if "own_step_time_s/rank_1" in h]
    assert len(charted) == len(own) and any("straggler_slowdown/rank_1" in h for h in wandb_run.history)
    assert [s["rank"] for s in wandb_run.summary["stragglers"]] == [1]


def test_an_undisturbed_run_names_no_straggler(scaletrain) -> None:
    run = scaletrain("+strategy=ddp", *SLOW_RANK, *TWO_RANKS, "+workload.fn.sleep_s=0", "+workload.fn.width=512",
                     "train.global_batch_size=512", "train.max_steps=500", "train.epochs=100",
                     env={"PYTHONPATH": str(USERLAND)})  # fmt: skip
    assert run.returncode == 0, run.output
    assert run.summary["train_time_s"] > 4 * BLOCK_S  # long enough to be judged, several times over
    assert run.summary["stragglers"] == []
    assert not any("stragglers" in m for m in run.metrics) and "straggler at step" not in run.output


def _duty_cycle(pid: int, period_s: float, stop: threading.Event) -> None:
    """Stop ``pid`` for half of every period until ``stop`` is set; leave it running."""
    try:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            time.sleep(period_s / 2)
            os.kill(pid, signal.SIGCONT)
            time.sleep(period_s / 2)
    except ProcessLookupError:
        pass
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_a_rank_stopped_half_the_time_from_outside_is_named(tmp_path: Path) -> None:
    (tmp_path / EXPECTS_STRAGGLER).touch()
    run_dir = tmp_path / "run"
    # Steps of about 20 ms, mostly compute: a stop that lands in the all-reduce delays both ranks alike, and is
    # nobody's own time; the stops that land elsewhere (most of them) are rank 1's.
    overrides = ("+strategy=ddp", *SLOW_RANK, "+workload.fn.sleep_s=0", "+workload.fn.width=512",
                 "train.global_batch_size=512", "launcher.nproc_per_node=2", "train.log_every_n_steps=20",
                 "train.max_steps=200", "train.epochs=100")  # fmt: skip
    proc = subprocess.Popen(scaletrain_argv(run_dir, *overrides), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=child_env({"PYTHONPATH": str(USERLAND)}))  # fmt: skip
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 120
        while (
            not (beacon := beacon_path(run_dir, 1)).exists()
            or json.loads(beacon.read_text() or "{}").get("step", 0) < 1
        ):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)
        pid = json.loads(beacon.read_text())["pid"]
        cycler = threading.Thread(target=_duty_cycle, args=(pid, 0.1, stop), daemon=True)
        cycler.start()
        output, _ = proc.communicate(timeout=300)
    finally:
        stop.set()
        proc.kill()
    assert proc.returncode == 0, output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert _named(summary) == [1], (summary["stragglers"], output[-3000:])
    assert summary["stragglers"][0]["slowdown"] > 1.5
