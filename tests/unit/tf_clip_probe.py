"""Run by test_clipping.py in a process of its own (TensorFlow's logical devices are set before its runtime starts):
one clipped training step of scaletrain's TensorFlow loop over 2 replicas, against the same step computed by hand on
the whole batch with no strategy. Prints both as JSON."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402

from scaletrain.rank.loops.tf_steps import Steps  # noqa: E402

CLIP = 0.5
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 3)).astype(np.float32)
y = rng.normal(size=(8, 1)).astype(np.float32)


def model_and_optimizer():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="ones")])
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    optimizer.build(model.trainable_variables)
    return model, optimizer


strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model, optimizer = model_and_optimizer()
steps = Steps(strategy, model, optimizer, "mse", clip_grad_norm=CLIP)
index = [np.arange(0, 4), np.arange(4, 8)]  # replica r: rows 4r .. 4r+3
loss, norm = steps.train_step(*steps.distribute(x, y, index))
replica_norms = [float(v) for v in strategy.experimental_local_results(norm)]

alone, alone_optimizer = model_and_optimizer()  # the whole batch by hand: the global mean loss's gradient
with tf.GradientTape() as tape:
    whole_loss = tf.reduce_mean(tf.reduce_mean(tf.square(alone(x) - y), axis=-1))
grads = tape.gradient(whole_loss, alone.trainable_variables)
clipped, whole_norm = tf.clip_by_global_norm(grads, CLIP)
alone_optimizer.apply_gradients(zip(clipped, alone.trainable_variables, strict=True))
print(
    json.dumps(
        {
            "replica_norms": replica_norms,
            "whole_norm": float(whole_norm),
            "weights": [w.tolist() for w in model.get_weights()],
            "whole_weights": [w.tolist() for w in alone.get_weights()],
        }
    )
)
