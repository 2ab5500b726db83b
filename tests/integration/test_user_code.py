"""User code through every entry point the local launcher offers: a Hydra _target_ function and a torchrun script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

USERLAND = Path(__file__).parent / "userland"


def test_user_function_runs_once_per_rank_with_a_context(scaletrain):
    run = scaletrain(
        "+strategy=ddp",
        "launcher.nproc_per_node=2",
        "workload=function",
        "workload.fn._target_=user_train.main",
        "+workload.fn.steps=30",
        env={"PYTHONPATH": str(USERLAND)},
    )
    assert run.returncode == 0, run.output
    summary = run.summary
    assert summary["weight"] == pytest.approx(3.0 * (1 - 0.8**30), rel=1e-5)  # w -= 0.1 * 2(w - 3)
    assert summary["world_size_seen"] == 2 and summary["rank_seen"] == 0
    assert [m["step"] for m in run.metrics] == list(range(1, 31))  # logged once, by rank 0
    assert (run.dir / "checkpoints" / "step_000000030.ckpt").is_file()


@pytest.mark.parametrize("mark_steps", [False, True])
def test_sweep_of_a_user_function_measures_what_it_marks(scaletrain, mark_steps):
    """A function that marks its steps (ctx.step_done) gets measured efficiency; one that does not gets a sweep
    table saying what was not measured, not a crash."""
    run = scaletrain(
        "+strategy=ddp",
        "workload=function",
        "workload.fn._target_=user_train.main",
        "+workload.fn.steps=60",
        f"+workload.fn.mark_steps={mark_steps}",
        "train.log_every_n_steps=10",
        "train.flops_per_sample=8",  # a user loop states its FLOPs (scaletrain cannot see inside its step)
        "train.peak_flops_per_s=1e9",
        "scaling.device_counts=[1,2]",
        "scaling.allreduce_repeats=1",
        env={"PYTHONPATH": str(USERLAND)},
    )
    assert run.returncode == 0, run.output
    result = json.loads((run.dir / "scaling.json").read_text())
    efficiencies = [row["efficiency"] for row in result["rows"]]
    if mark_steps:
        assert efficiencies[0] == pytest.approx(1.0) and efficiencies[1] > 0
        point = json.loads((run.dir / "devices_2" / "summary.json").read_text())
        assert point["steps"] == 60 and point["samples_per_s"] > 0 and "comm_fraction" not in point
        # the model it passed (one float32): its gradient bytes, so the sweep predicts the all-reduce's cost
        assert (point["num_parameters"], point["gradient_bytes"]) == (1, 4) and result["gradient_bytes"] == 4
        assert result["rows"][1]["predicted_efficiency"] is not None
        assert point["mfu"] == pytest.approx(8 * point["samples_per_s_per_device"] / 1e9)  # MFU from its figures
        assert result["rows"][1]["mfu"] == pytest.approx(point["mfu"])
    else:
        assert efficiencies == [None, None]
        assert "Not measured: throughput, step time and efficiency were not measured" in run.output


def test_torchrun_style_script_gets_torchrun_environment(scaletrain, tmp_path):
    out = tmp_path / "script_out"
    out.mkdir()
    run = scaletrain(
        "launcher.nproc_per_node=2",
        f"script={USERLAND / 'torchrun_script.py'}",
        f"script_args=[{out},--lr,0.5,'two words']",
    )
    assert run.returncode == 0, run.output
    records = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    for rank, record in enumerate(records):
        assert record["RANK"] == str(rank) and record["LOCAL_RANK"] == str(rank)
        assert record["WORLD_SIZE"] == "2" and record["LOCAL_WORLD_SIZE"] == "2"
        assert record["sum"] == 3.0  # 1 + 2: the gloo group really formed
        assert record["argv"] == ["--lr", "0.5", "two words"]


def test_failing_script_is_reported_with_its_last_lines(scaletrain, tmp_path):
    script = tmp_path / "broken.py"
    script.write_text(
        "import os, sys\nif os.environ['RANK'] == '1':\n    print('about to fail')\n    sys.exit(3)\n"
        "import time\ntime.sleep(60)\n"
    )
    run = scaletrain("launcher.nproc_per_node=2", f"script={script}", timeout=60)
    assert run.returncode == 1
    assert "rank 1 exited with code 3; its last lines of output:" in run.output
    assert "about to fail" in run.output
