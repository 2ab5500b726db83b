"""The learning-rate schedule (train.lr_schedule, train.warmup_steps) and global-norm clipping (train.clip_grad_norm):
the one formula every framework follows, and clipping by the norm of the gradient every replica's sum makes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import child_env

from scaletrain.contract.config import TrainConfig
from scaletrain.contract.errors import ConfigError
from scaletrain.rank.loops.schedule import Schedule


def test_warmup_rises_linearly_to_the_base_rate_then_the_schedule_takes_over():
    cosine = Schedule("cosine", warmup_steps=4, total_steps=104, min_ratio=0.1)
    assert [cosine.factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cosine.factor(4) == 1.0  # the decay starts at the base rate
    assert cosine.factor(54) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: half way between base and floor
    assert cosine.factor(104) == pytest.approx(0.1) and cosine.factor(10_000) == pytest.approx(0.1)  # then the floor
    linear = Schedule("linear", total_steps=10)
    assert [linear.factor(s) for s in (0, 5, 10, 20)] == [1.0, 0.5, 0.0, 0.0]
    step = Schedule("step", warmup_steps=2, step_every=3, step_gamma=0.5)
    assert [step.factor(s) for s in range(2, 10)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert (
        not Schedule().varies and Schedule(warmup_steps=1).varies and all(Schedule().factor(s) == 1.0 for s in range(5))
    )


def test_the_schedule_spans_the_epochs_unless_told_and_max_steps_does_not_shorten_it():
    train = TrainConfig(epochs=10, max_steps=7, lr_schedule="cosine", warmup_steps=2)
    assert Schedule.of(train, epoch_steps=30).total_steps == 30
    assert Schedule.of(TrainConfig(lr_schedule="linear", schedule_steps=12), epoch_steps=30).total_steps == 12
    with pytest.raises(ConfigError, match=r"train.warmup_steps=30 leaves none of the run's 30 steps to decay over"):
        Schedule.of(TrainConfig(lr_schedule="cosine", warmup_steps=30), epoch_steps=30)


def test_keras_and_python_give_the_same_rate_at_every_step():
    pytest.importorskip("tensorflow", reason="the Keras schedule needs TensorFlow")
    from scaletrain.rank.loops.tf_steps import ScheduledRate

    for schedule in (
        Schedule("cosine", warmup_steps=5, total_steps=50, min_ratio=0.1),
        Schedule("linear", warmup_steps=0, total_steps=20),
        Schedule("step", warmup_steps=3, step_every=4, step_gamma=0.5),
        Schedule("constant", warmup_steps=7),
    ):
        rate = ScheduledRate(0.02, schedule)
        for step in (0, 1, 4, 5, 6, 19, 20, 49, 50, 80):
            assert float(rate(step)) == pytest.approx(0.02 * schedule.factor(step), rel=1e-6, abs=1e-9), (
                schedule,
                step,
            )


@pytest.mark.tf
@pytest.mark.slow
def test_tensorflow_clips_by_the_norm_of_every_replicas_summed_gradient():
    """Keras' own clipping sees one replica's gradient before its all-reduce: over 2 replicas the step must equal the
    whole batch's step clipped by the whole batch's norm (tf_clip_probe.py, a process of its own)."""
    probe = Path(__file__).with_name("tf_clip_probe.py")
    done = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, env=child_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["whole_norm"] > 0.5  # the clip (0.5) is active, so a wrong norm would move the weights differently
    assert result["replica_norms"] == pytest.approx([result["whole_norm"]] * 2, rel=1e-6)
    flat = [value for weight in result["weights"] for value in np.ravel(weight)]
    whole = [value for weight in result["whole_weights"] for value in np.ravel(weight)]
    assert flat == pytest.approx(whole, rel=1e-5, abs=1e-7)
