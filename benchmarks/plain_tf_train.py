"""The baseline of tf_loop_overhead.py: a hand-written single-process TensorFlow custom training loop.

What a TensorFlow user writes without scaletrain: a Keras model, a ``tf.function`` step with GradientTape and
``optimizer.apply_gradients``, no distribution strategy. Same arrays and model as scaletrain's synthetic
workload (built by the same functions under the same seed), the same optimizer (SGD, momentum), batch size and
per-epoch order (a NumPy permutation seeded by (seed, epoch), batches cut in order). Timed as scaletrain times
it: the first window of ``--window`` steps is warm-up (tracing), the rest is timed with perf_counter, and each
window's mean step time is kept. Writes {"step_time_s", "window_step_times_s", "final_loss", "steps"} to --out.

    python benchmarks/plain_tf_train.py --steps 500 --window 10 --out result.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from scaletrain.workloads import keras_models, synthetic  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-samples", type=int, default=8192)
    p.add_argument("--input-dim", type=int, default=256)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--window", type=int, default=10, help="steps per timing window (log_every_n_steps)")
    p.add_argument("--out", required=True)
    return p


def train(a: argparse.Namespace, clock=time.perf_counter) -> dict:
    """Build and train as the module docstring says; ``clock`` times the windows (process_time: CPU seconds)."""
    sizes = ("num_samples", "input_dim", "width", "depth", "num_classes")
    cfg = synthetic.Config(**{k: getattr(a, k) for k in sizes})
    x, y = synthetic.data(cfg, a.seed)
    keras.utils.set_random_seed(a.seed)
    model = keras_models.mlp((a.input_dim,), a.width, a.num_classes, depth=a.depth)
    optimizer = keras.optimizers.SGD(learning_rate=a.lr, momentum=a.momentum)

    @tf.function(reduce_retracing=True)
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    step, epoch, loss = 0, 0, None
    marks: list[float] = []  # perf_counter at the end of each window
    while step < a.steps:
        order = np.random.default_rng([a.seed, epoch]).permutation(len(x))
        for start in range(0, len(order), a.batch_size):
            batch = order[start : start + a.batch_size]
            loss = train_step(tf.constant(x[batch]), tf.constant(y[batch]))
            step += 1
            if step % a.window == 0:
                marks.append(clock())
            if step == a.steps:
                break
        epoch += 1

    windows = [(end - start) / a.window for start, end in itertools.pairwise(marks)]
    return {
        "step_time_s": (marks[-1] - marks[0]) / (a.steps - a.window),
        "window_step_times_s": windows,
        "final_loss": float(loss),
        "steps": step,
    }


def main() -> None:
    p = parser()
    a = p.parse_args()
    if not 0 < a.window < a.steps or a.steps % a.window:
        p.error("--steps must be a multiple of --window, and more than one window")
    with open(a.out, "w") as f:
        json.dump(train(a), f)


if __name__ == "__main__":
    main()
