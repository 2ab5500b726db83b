"""The cause is named, not the first casualty: a user exception on one rank makes its peers fail inside a
collective, and under every launcher the verdict names the rank that raised, with its error and traceback, and says
the others ended because of it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

USERLAND = Path(__file__).parent / "userland"
LAUNCHERS = [
    pytest.param(("launcher.nproc_per_node=2",), id="local"),
    pytest.param(("launcher=ray", "launcher.nproc=2"), id="ray", marks=pytest.mark.ray),
    pytest.param(("launcher=slurm", "launcher.nodes=2", "launcher.wait=true"), id="slurm", marks=pytest.mark.slurm),
]


@pytest.mark.parametrize("fail_rank", [1, 0])
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_the_rank_that_raised_is_named_and_the_others_ended_because_of_it(scaletrain, launcher, fail_rank) -> None:
    run = scaletrain("+strategy=ddp", *launcher, "workload=function", "workload.fn._target_=failing_rank.main",
                     f"+workload.fn.fail_rank={fail_rank}", "train.epochs=5", "train.global_batch_size=64",
                     "train.log_every_n_steps=5", env={"PYTHONPATH": str(USERLAND)}, timeout=300)  # fmt: skip
    assert run.returncode == 1, run.output
    other = 1 - fail_rank
    verdicts = [line for line in run.output.splitlines() if "job failed: rank" in line]
    assert verdicts, run.output
    # a host is named by its host name (the local cluster's SLURM nodes are n1 and n2)
    host = r"n[12]" if launcher[0] == "launcher=slurm" else re.escape(socket.gethostname())
    named = rf"job failed: rank {fail_rank} on {host} raised ValueError: a bad batch on rank {fail_rank} "
    assert re.search(named, verdicts[0]), verdicts[0]
    assert "(failing_rank.py:" in verdicts[0] and "in failing_step)" in verdicts[0]
    assert f"; rank {other} ended because rank {fail_rank} failed" in verdicts[0], verdicts[0]
    if launcher[0] != "launcher=slurm":  # the local and Ray launchers show its last lines: its traceback
        assert "ValueError: a bad batch" in run.output.split(verdicts[0])[-1], run.output
