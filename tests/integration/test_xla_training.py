"""+strategy=xla for real: torch_xla on its CPU device, 2 devices under SPMD in one process, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xla]

USERLAND = Path(__file__).parent / "userland"
TWO_DEVICES = ("+strategy=xla", "strategy.device=CPU", "strategy.num_devices=2")


def _log_lines(run) -> list[dict]:
    return [m for m in run.metrics if "loss" in m and "compiles" in m]


def test_step_graph_is_compiled_once_and_reused(scaletrain):
    """torch_xla's CompileTime count (logged as `compiles`) stops growing after the first log window."""
    run = scaletrain(
        *TWO_DEVICES,
        "workload=synthetic",
        "workload.num_samples=520",  # 8 full batches of 64 per epoch and a partial one, which is dropped
        "workload.width=32",
        "workload.depth=1",
        "train.epochs=4",
        "train.global_batch_size=64",
        "train.log_every_n_steps=4",
    )
    assert run.returncode == 0, run.output
    lines = _log_lines(run)
    assert [m["step"] for m in lines] == list(range(4, 33, 4))  # 8 steps per epoch: the partial batch is dropped
    warm = lines[1]["compiles"]
    assert 1 <= lines[0]["compiles"] <= warm <= 6
    assert all(m["compiles"] == warm for m in lines[1:]), [m["compiles"] for m in lines]
    assert all(m["compile_time_s"] == lines[1]["compile_time_s"] for m in lines[1:])
    s = run.summary
    assert s["compile_time_s"] > 0 and s["compiles"] >= warm
    assert s["step_time_s"] < s["compile_time_s"]  # step time leaves compilation out


@pytest.mark.parametrize("workload", ["digits", "digits_cnn"])
def test_digits_reaches_90_percent_validation_accuracy_under_xla(scaletrain, workload):
    run = scaletrain(*TWO_DEVICES, f"workload={workload}", timeout=400)
    assert run.returncode == 0, run.output
    assert run.summary["val_accuracy"] >= 0.9
    assert "validation: loss" in run.output


def test_checkpoints_are_cpu_tensors_and_resume_gives_the_uninterrupted_result(scaletrain, tmp_path):
    import torch

    args = (*TWO_DEVICES, "workload=linear", "train.epochs=30")  # 2 full batches per epoch: 60 steps
    reference = scaletrain(*args)
    assert reference.returncode == 0, reference.output

    ckpt = tmp_path / "ckpt"
    first = scaletrain(*args, "train.max_steps=40", "checkpoint.every_n_steps=20", f"checkpoint.dir={ckpt}")
    assert first.returncode == 0, first.output
    listed = sorted(p.name for p in ckpt.iterdir())
    assert listed == [".scaletrain-checkpoints.json", "step_000000020.ckpt", "step_000000040.ckpt"]
    state = torch.load(ckpt / "step_000000040.ckpt", weights_only=True)  # a plain file: no torch_xla needed
    tensors = [*state["model"].values(), *state["optimizer"]["state"][0].values()]
    assert tensors and all(t.device.type == "cpu" for t in tensors)

    resumed = scaletrain(*args, "resume=true", f"checkpoint.dir={ckpt}")
    assert resumed.returncode == 0, resumed.output
    assert "resumed from" in resumed.output and "(step 40)" in resumed.output
    assert resumed.summary["steps"] == reference.summary["steps"] == 60
    for key in ("weight", "bias", "final_loss"):
        assert resumed.summary[key] == pytest.approx(reference.summary[key], rel=1e-5, abs=1e-7), key


def test_user_function_trains_on_sharded_xla_input(scaletrain):
    run = scaletrain(
        *TWO_DEVICES,
        "workload=function",
        "workload.fn._target_=xla_user_train.main",
        env={"PYTHONPATH": f"{USERLAND}:{Path(__file__).parents[2] / 'src'}"},
    )
    assert run.returncode == 0, run.output
    s = run.summary
    assert s["device_type"] == "xla" and s["mesh_devices"] == 2
    assert s["input_sharding"] == "{devices=[2,1]0,1}"  # the batch split in two along dim 0
    assert s["weight"] == pytest.approx(2.0, abs=0.05) and s["bias"] == pytest.approx(1.0, abs=0.05)
    assert (run.dir / "checkpoints" / "step_000000200.ckpt").is_file()
