"""Every user error ends in one sentence naming the value and the fix, exit code 2, before any rank starts."""

from __future__ import annotations

import pytest

CASES = {
    "unknown strategy": (["+strategy=horovod"], "strategy=horovod does not exist; choose one of: ddp"),
    "strategy without +": (["strategy=ddp"], "write +strategy=ddp"),
    "unknown launcher": (["launcher=kubernetes"], "launcher=kubernetes does not exist; choose one of: local"),
    "unknown workload": (["workload=imagenet"], "workload=imagenet does not exist; choose one of: cifar10, digits"),
    "nproc < 1": (["launcher.nproc_per_node=0"], "launcher.nproc_per_node=0 must be 'auto' or a whole number"),
    "batch not divisible": (
        ["launcher.nproc_per_node=2", "train.global_batch_size=5"],
        "train.global_batch_size=5 is not divisible by the world size 2; use a multiple of 2",
    ),
    "missing script": (["script=/no/such/train.py"], "script=/no/such/train.py does not exist"),
    "resume without checkpoint": (["resume=true"], "resume=true but"),
    "wrong type": (["train.lr=fast"], "train.lr='fast' is not valid (float expected)"),
    "unknown backend": (["+strategy=ddp", "strategy.backend=mpi"], "strategy.backend='mpi' is not known"),
    "nccl without GPU": (["+strategy=ddp", "strategy.backend=nccl"], "strategy.backend=nccl needs NVIDIA GPUs"),
    "data dir missing": (["workload=mnist"], "workload.data_dir must be set"),
    "data dir without files": (["workload=cifar10", "workload.data_dir=."], "lacks data_batch_1"),
    "unknown key": (["train.learning_rate=0.1"], "train.learning_rate is not a setting scaletrain knows"),
    "unknown nested key": (["workload.nope.x=1"], "workload.nope.x is not a setting scaletrain knows"),
    "misplaced +": (["+train.lr=1"], "An item is already at 'train.lr'; Either remove + prefix"),
    "malformed override": (["train.lr=["], "the command line could not be applied to the configuration"),
    "value where a group belongs": (["train=5"], "train=5 is not valid: train is a group of settings"),
    "sweep on a launcher without sweeps": (
        ["launcher=slurm", "launcher.dry_run=true", "scaling.world_sizes=[1,2]"],
        "launcher=slurm cannot run scaling sweeps yet; use launcher=local or launcher=ray",
    ),
    "function not importable": (
        ["workload=function", "workload.fn._target_=no_such_pkg.train"],
        "workload.fn._target_=no_such_pkg.train cannot be imported",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_sentence_and_starts_nothing(scaletrain, case):
    overrides, sentence = CASES[case]
    if case == "nccl without GPU":
        from scaletrain import hardware

        if hardware.gpu_count():
            pytest.skip("this machine has a GPU, so nccl is a valid choice here")
    run = scaletrain(*overrides, timeout=60)
    assert run.returncode == 2, run.output
    errors = [line for line in run.stderr.splitlines() if line.startswith("scaletrain: error: ")]
    assert len(errors) == 1 and sentence in errors[0], run.output
    assert "Traceback" not in run.output
    assert not (run.dir / "logs").exists() and not (run.dir / "job.json").exists()  # no rank was started


def test_unreachable_wandb_server_exits_2_before_anything_starts(scaletrain):
    env = {"WANDB_API_KEY": "not-a-real-key", "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_MODE": ""}
    run = scaletrain("logger=wandb", "logger.mode=auto", env=env, timeout=60)
    assert run.returncode == 2, run.output
    assert "the W&B server 127.0.0.1:9 cannot be reached" in run.stderr
    assert "use logger.mode=offline" in run.stderr
    assert not (run.dir / "logs").exists()
    assert "not-a-real-key" not in run.output
