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
