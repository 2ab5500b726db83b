"""An unmodified TF_CONFIG script, as in TensorFlow's multi-worker tutorial: it reads TF_CONFIG and nothing else."""

import json
import os
import sys

import tensorflow as tf

out_dir = sys.argv[1]
tf_config = json.loads(os.environ["TF_CONFIG"])
strategy = tf.distribute.MultiWorkerMirroredStrategy()
index = tf_config["task"]["index"]


@tf.function
def total():
    return strategy.reduce("sum", strategy.run(lambda: tf.constant(float(index + 1))), axis=None)


record = {
    "TF_CONFIG": tf_config,
    "replicas": strategy.num_replicas_in_sync,
    "sum": float(total()),
    "argv": sys.argv[2:],
}
with open(os.path.join(out_dir, f"worker{index}.json"), "w") as f:
    json.dump(record, f)
