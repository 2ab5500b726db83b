"""A loss that turns NaN or infinite ends the run by default (train.on_nonfinite=stop): exit 4, one sentence naming
the step, the rank and the last good checkpoint, and no checkpoint of the diverged model; with warn the run goes on.
Every file is strict JSON either way (a non-finite number is null, and ``nonfinite`` says which and why)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

USERLAND = Path(__file__).parent / "userland"
# y = 2x + 1 at a learning rate that makes it diverge: infinite by about step 17; checkpoints every 3 steps fall
# between the log steps (every 5), so the check before a checkpoint is what catches it.
DIVERGING = ("workload=linear", "seed=4", "train.lr=1.0", "train.epochs=20", "train.log_every_n_steps=5",
             "checkpoint.every_n_steps=3")  # fmt: skip
STRATEGIES = [
    pytest.param(("+strategy=ddp", "launcher.nproc_per_node=2"), id="ddp"),
    pytest.param(("+strategy=mirrored", "strategy.cpu_devices=2"), id="mirrored", marks=pytest.mark.tf),
    pytest.param(("+strategy=xla", "strategy.device=CPU", "strategy.num_devices=2"), id="xla", marks=pytest.mark.xla),
]


def _strict(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _strict_rows(run_dir: Path) -> list[dict]:
    return [_strict(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _steps_checkpointed(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.ckpt"))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_diverging_loss_stops_the_run_before_any_checkpoint_of_it(scaletrain, strategy) -> None:
    run = scaletrain(*strategy, *DIVERGING)
    assert run.returncode == 4, run.output
    said = [line for line in run.output.splitlines() if line.startswith("[rank") and "error: the loss became" in line]
    assert len(said) == 1 and said[0].startswith("[rank 0]"), run.output  # rank 0 says it, once
    sentence = said[0].split("error: ", 1)[1]
    step = int(sentence.split(" at step ")[1].split()[0])
    checkpointed = _steps_checkpointed(run.dir)
    assert checkpointed and max(checkpointed) < step, (checkpointed, sentence)  # nothing of the diverged model
    assert (
        f"(train.on_nonfinite=stop); the last good checkpoint is step {max(checkpointed)} in {run.dir / 'checkpoints'}"
        in sentence
    )
    assert re.search(r" at step \d+ on ranks? [01](, 1)? \(", sentence), sentence
    assert "job failed: rank" in run.output and "restarting" not in run.output  # a restart would diverge again
    assert not (run.dir / "summary.json").exists()
    assert _strict_rows(run.dir)  # what was logged before it is strict JSON


def test_warn_trains_on_and_writes_the_non_finite_figures_as_null(scaletrain) -> None:
    run = scaletrain("+strategy=ddp", "launcher.nproc_per_node=2", *DIVERGING, "train.on_nonfinite=warn")
    assert run.returncode == 0, run.output
    warned = [line for line in run.output.splitlines() if "(train.on_nonfinite=warn): training goes on" in line]
    assert len(warned) == 1, run.output
    summary = _strict((run.dir / "summary.json").read_text())
    assert summary["final_loss"] is None and summary["nonfinite"]["final_loss"] in ("nan", "inf")
    assert summary["steps"] == 60 and summary["nonfinite_loss_windows"] >= 1
    rows = _strict_rows(run.dir)
    assert rows[-1]["loss"] is None and rows[-1]["nonfinite"] == {"loss": rows[-1]["nonfinite"]["loss"]}
    assert rows[0]["loss"] > 0 and "nonfinite" not in rows[0]


def test_a_user_function_that_logs_a_nan_loss_is_stopped_by_default(scaletrain) -> None:
    run = scaletrain("+strategy=ddp", "launcher.nproc_per_node=2", "workload=function",
                     "workload.fn._target_=diverging_fn.main", env={"PYTHONPATH": str(USERLAND)})  # fmt: skip
    assert run.returncode == 4, run.output
    assert (
        "the loss logged at step 3 is nan (train.on_nonfinite=stop); the last good checkpoint is step 2 in "
        f"{run.dir / 'checkpoints'}" in run.output
    )
    rows = _strict_rows(run.dir)
    assert [row["step"] for row in rows] == [1, 2]  # the NaN row was never written
