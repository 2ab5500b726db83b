"""Real multi-process DDP training on CPU (gloo) through the real CLI."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_default_job_picks_ddp_with_gloo_and_learns_linear(scaletrain):
    run = scaletrain()  # no strategy, no workload: the README's first command
    assert run.returncode == 0, run.output
    assert "picked ddp with gloo (no GPU found)" in run.output
    summary = run.summary
    assert summary["strategy"] == "ddp" and summary["workload"] == "linear"
    assert summary["processes"] >= 2
    assert "linear: weight=" in run.output and "prediction(x=6)=" in run.output


def test_one_rank_learns_y_equals_2x_plus_1(scaletrain):  # two ranks: the parity matrix (test_parity.py)
    run = scaletrain("+strategy=ddp", "workload=linear", "launcher.nproc_per_node=1")
    assert run.returncode == 0, run.output
    s = run.summary
    assert s["processes"] == 1
    assert s["weight"] == pytest.approx(2.0, abs=0.05)
    assert s["bias"] == pytest.approx(1.0, abs=0.1)
    assert s["prediction_x6"] == pytest.approx(13.0, abs=0.2)


def test_two_ranks_end_identical_and_loss_decreases(scaletrain):
    run = scaletrain(
        "+strategy=ddp",
        "workload=synthetic",
        "launcher.nproc_per_node=2",
        "workload.num_samples=1024",
        "workload.width=64",
        "workload.depth=2",
        "train.epochs=3",
        "train.global_batch_size=64",
        "train.log_every_n_steps=4",
    )
    assert run.returncode == 0, run.output
    fingerprints = run.summary["replica_fingerprints"]
    assert len(fingerprints) == 2
    assert fingerprints[0] == fingerprints[1]  # bit-identical replicas after gradient averaging
    losses = [m["loss"] for m in run.metrics if "loss" in m]
    assert len(losses) >= 4
    assert losses[-1] < 0.9 * losses[0]
    # Only rank 0 reports: the other rank's log holds no training lines.
    assert "[rank 1] step" not in run.output and "[rank 0] step" in run.output
    assert (run.dir / "logs" / "rank_1.log").exists()


@pytest.mark.parametrize("workload", ["digits", "digits_cnn"])
def test_digits_reaches_90_percent_validation_accuracy(scaletrain, workload):
    run = scaletrain("+strategy=ddp", f"workload={workload}", "launcher.nproc_per_node=2")
    assert run.returncode == 0, run.output
    assert run.summary["val_accuracy"] >= 0.9
    assert "validation: loss" in run.output


def test_same_seed_same_result_and_shards_change_every_epoch(scaletrain):
    args = ("+strategy=ddp", "workload=digits", "launcher.nproc_per_node=2", "train.epochs=2", "seed=7")
    first, second = scaletrain(*args), scaletrain(*args)
    assert first.returncode == 0 and second.returncode == 0, first.output + second.output
    assert first.summary["final_loss"] == second.summary["final_loss"]
    assert first.summary["replica_fingerprints"] == second.summary["replica_fingerprints"]
    other_seed = scaletrain(*args[:-1], "seed=8")
    assert other_seed.summary["final_loss"] != first.summary["final_loss"]


def test_outputs_land_in_the_run_directory(scaletrain):
    run = scaletrain("+strategy=ddp", "workload=linear", "launcher.nproc_per_node=2", "train.epochs=5")
    assert run.returncode == 0, run.output
    for name in ("summary.json", "metrics.jsonl", "job.json", ".hydra/config.yaml", "scaletrain.log"):
        assert (run.dir / name).is_file(), name
    listed = sorted(p.name for p in (run.dir / "checkpoints").iterdir())
    assert listed == [".scaletrain-checkpoints.json", "step_000000015.ckpt"]  # and no temp file left
    assert all({"loss", "samples_per_s", "step_time_s"} <= set(m) for m in run.metrics if "loss" in m)


def test_multirun_runs_one_job_per_point(tmp_path):
    import subprocess
    import sys

    from conftest import child_env

    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scaletrain",
            "-m",
            f"hydra.sweep.dir={sweep}",
            "+strategy=ddp",
            "launcher.nproc_per_node=1",
            "train.epochs=10",
            "seed=1,2",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=child_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 2
