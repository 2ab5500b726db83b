"""Every user error ends in one sentence naming the value and the fix, exit code 2, before any rank starts."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import child_env

CASES = {
    "unknown strategy": (["+strategy=horovod"], "strategy=horovod does not exist; choose one of: ddp"),
    "strategy without +": (["strategy=ddp"], "write +strategy=ddp"),
    "unknown launcher": (["launcher=kubernetes"], "launcher=kubernetes does not exist; choose one of: local"),
    "unknown workload": (
        ["workload=imagenet"],
        "workload=imagenet does not exist; choose one of: charlm, cifar10, custom, digits",
    ),
    "micro-batch that does not divide the share": (
        ["launcher.nproc_per_node=2", "train.global_batch_size=16", "train.micro_batch_size=3"],
        "8 samples per device, not a whole number of micro-batches of train.micro_batch_size=3; use "
        "train.micro_batch_size=2 (4 accumulation steps), or train.global_batch_size=12 or 18.",
    ),
    "micro-batch of 0": (["train.micro_batch_size=0"], "train.micro_batch_size=0 must be at least 1"),
    "charlm heads that do not divide the width": (
        ["workload=charlm", "workload.d_model=30", "workload.n_heads=4"],
        "workload.d_model=30 is not divisible by workload.n_heads=4",
    ),
    "peak flops of 0": (["train.peak_flops_per_s=0"], "train.peak_flops_per_s=0.0 must be positive"),
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
    "slurm sweep point of part of a node": (
        ["launcher=slurm", "launcher.dry_run=true", "launcher.ntasks_per_node=2", "scaling.device_counts=[3]"],
        "scaling.device_counts holds 3, which is not a whole number of nodes of 2 task(s) each",
    ),
    "empty checkpoint dir": (["checkpoint.dir=''"], "checkpoint.dir='' is empty, which would write checkpoints into"),
    "blank checkpoint dir": (["checkpoint.dir=' '"], "checkpoint.dir=' ' is empty"),
    "checkpoint dir is a file": ([f"checkpoint.dir={__file__}"], f"checkpoint.dir={__file__} is a file, not a dir"),
    "checkpoint dir under a file": (
        [f"checkpoint.dir={__file__}/sub"],
        f"checkpoint.dir={__file__}/sub cannot be created because {__file__} is a file",
    ),
    "function not importable": (
        ["workload=function", "workload.fn._target_=no_such_pkg.train"],
        "workload.fn._target_=no_such_pkg.train cannot be imported",
    ),
    # train: nothing that would train to NaN or misbehave silently
    "lr nan": (["train.lr=nan"], "train.lr=nan is not a finite number; give a finite value, e.g. train.lr=0.01."),
    "lr inf": (["train.lr=1e400"], "train.lr=inf is not a finite number"),
    "lr zero": (["train.lr=0"], "train.lr=0.0 must be positive"),
    "negative momentum": (["train.momentum=-0.5"], "train.momentum=-0.5 must lie in [0, 1)"),
    "momentum of 1": (["train.momentum=1"], "train.momentum=1.0 must lie in [0, 1)"),
    "unknown non-finite policy": (["train.on_nonfinite=skip"], "train.on_nonfinite='skip' is not known"),
    "negative weight decay": (["train.weight_decay=-1"], "train.weight_decay=-1.0 must be 0 or more"),
    "weight decay nan": (["train.weight_decay=nan"], "train.weight_decay=nan is not a finite number"),
    "log every 0 steps": (["train.log_every_n_steps=0"], "train.log_every_n_steps=0 must be at least 1."),
    # top level
    "unknown top-level key": (["+foo=bar"], "foo is not a setting scaletrain knows; drop +foo=..."),
    "negative seed": (["seed=-1"], "seed=-1 must be a whole number from 0 to 4294967295"),
    "empty output dir": (["output_dir=''"], "output_dir='' is empty; leave it unset"),
    "output dir is a file": ([f"output_dir={__file__}"], f"output_dir='{__file__}' is a file"),
    # checkpoint
    "keep no checkpoint": (["checkpoint.keep_last=0"], "checkpoint.keep_last=0 would keep no checkpoint"),
    "negative checkpoint interval": (["checkpoint.every_n_steps=-1"], "checkpoint.every_n_steps=-1 must be 0 or more"),
    "negative stop check": (
        ["checkpoint.stop_check_every_n_steps=-1"],
        "checkpoint.stop_check_every_n_steps=-1 must be 0 or more",
    ),
    # launcher
    "empty master address": (["launcher.master_addr=''"], "launcher.master_addr is empty"),
    "unresolvable master address": (
        ["launcher.master_addr=no-such-host.invalid"],
        "launcher.master_addr=no-such-host.invalid cannot be used (",
    ),
    "grace nan": (["launcher.stop_grace_s=nan"], "launcher.stop_grace_s=nan is not a finite number"),
    "ray timeout inf": (["launcher=ray", "launcher.connect_timeout_s=inf"], "launcher.connect_timeout_s=inf is not"),
    "ray orphan timeout under two polls": (
        ["launcher=ray", "launcher.orphan_timeout_s=1"],
        "launcher.orphan_timeout_s=1 is shorter than two of the driver's polls",
    ),
    "ray cpus nan": (["launcher=ray", "launcher.num_cpus_per_rank=nan"], "launcher.num_cpus_per_rank=nan is not"),
    "ray gpus nan": (["launcher=ray", "launcher.num_gpus_per_rank=nan"], "launcher.num_gpus_per_rank=nan is not"),
    "ray resource nan": (
        ["launcher=ray", "+launcher.resources_per_rank.TPU=nan"],
        "launcher.resources_per_rank.TPU=nan is not a finite number",
    ),
    "ray address malformed": (["launcher=ray", "launcher.address=head"], "launcher.address='head' is not a Ray"),
    # workload
    "negative hidden size": (["workload=digits", "workload.hidden=-3"], "workload.hidden=-3 must be at least 1"),
    "negative width": (["workload=synthetic", "workload.width=-1"], "workload.width=-1 must be at least 1."),
    "validation fraction nan": (["workload=digits", "workload.val_fraction=nan"], "workload.val_fraction=nan is"),
    # logger: W&B's own rules for names
    "wandb project with a slash": (
        ["logger=wandb", "logger.mode=offline", "logger.project=team/run"],
        "logger.project='team/run' contains /, which W&B does not accept",
    ),
    "wandb project too long": (
        ["logger=wandb", "logger.mode=offline", f"logger.project={'p' * 129}"],
        "is too long, which W&B does not accept",
    ),
    "wandb empty tag": (["logger=wandb", "logger.mode=offline", "logger.tags=['']"], "logger.tags item '' must be"),
    # strategy
    "collective timeout nan": (["+strategy=ddp", "strategy.timeout_s=nan"], "strategy.timeout_s=nan is not a finite"),
    "collective timeout negative": (["+strategy=ddp", "strategy.timeout_s=-1"], "strategy.timeout_s=-1.0 must be"),
    # script
    "script is a directory": (
        [f"script={Path(__file__).parent}"],
        f"script={Path(__file__).parent} is a directory; give the path of a Python training script",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_sentence_and_starts_nothing(scaletrain, case):
    overrides, sentence = CASES[case]
    if case == "nccl without GPU":
        from scaletrain.common import hardware

        if hardware.gpu_count():
            pytest.skip("this machine has a GPU, so nccl is a valid choice here")
    run = scaletrain(*overrides, timeout=60)
    assert run.returncode == 2, run.output
    errors = [line for line in run.stderr.splitlines() if line.startswith("scaletrain: error: ")]
    assert len(errors) == 1 and sentence in errors[0] and errors[0].endswith("."), run.output
    assert "Traceback" not in run.output
    assert not run.dir.exists(), sorted(run.dir.rglob("*"))  # no rank started, and no run directory was left


def test_unreachable_wandb_server_exits_2_before_anything_starts(scaletrain):
    env = {"WANDB_API_KEY": "not-a-real-key", "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_MODE": ""}
    run = scaletrain("logger=wandb", "logger.mode=auto", env=env, timeout=60)
    assert run.returncode == 2, run.output
    assert "the W&B server 127.0.0.1:9 cannot be reached" in run.stderr
    assert "use logger.mode=offline" in run.stderr
    assert not run.dir.exists()
    assert "not-a-real-key" not in run.output


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.lr=nan"],  # refused before Hydra runs
        # refused inside the Hydra app: a SLURM sweep point that is not whole nodes
        ["launcher=slurm", "launcher.dry_run=true", "launcher.ntasks_per_node=2", "scaling.device_counts=[3]"],
    ],
)
def test_refused_run_leaves_no_default_run_directory(tmp_path, overrides):
    """Without hydra.run.dir, Hydra would create outputs/DATE/TIME: neither it nor its parents are left behind."""
    run = subprocess.run(
        [sys.executable, "-m", "scaletrain", *overrides],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert not (tmp_path / "outputs").exists()


def test_refused_run_keeps_a_run_directory_that_existed_before(scaletrain, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    run = scaletrain(f"hydra.run.dir={mine}", "launcher=slurm", "launcher.dry_run=true", "launcher.ntasks_per_node=2",
                     "scaling.device_counts=[3]")  # fmt: skip
    assert run.returncode == 2, run.output
    assert mine.is_dir()


@pytest.mark.ray
@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_ray_address_that_accepts_but_never_answers_is_given_up_within_the_connect_timeout(scaletrain, scheme):
    """Something listens at the port but is not Ray: Ray's own connect retries last minutes; the connect timeout
    bounds the whole attempt (probe, ray.init, its retries)."""
    with socket.create_server(("0.0.0.0", 0)) as server:
        port = server.getsockname()[1]
        threading.Thread(target=_accept_and_say_nothing, args=(server,), daemon=True).start()
        started = time.monotonic()
        address = f"{scheme}127.0.0.1:{port}"
        run = scaletrain("launcher=ray", f"launcher.address={address}", "launcher.connect_timeout_s=3", timeout=60)
        took = time.monotonic() - started
    assert run.returncode == 2, run.output
    errors = [line for line in run.stderr.splitlines() if line.startswith("scaletrain: error: ")]
    assert len(errors) == 1 and f"Ray did not connect to {address} within launcher.connect_timeout_s=3" in errors[0]
    assert took < 3 + 12, f"took {took:.1f} s"  # the budget, plus starting Python and importing Ray
    assert not run.dir.exists()


def _accept_and_say_nothing(server: socket.socket) -> None:
    held = []
    try:
        while True:
            held.append(server.accept()[0])
    except OSError:  # the server was closed
        for conn in held:
            conn.close()
