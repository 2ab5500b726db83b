"""Your model in scaletrain's driver against your own loop: the same ResNet-style CNN on the same PNG files, one
process on CPU; target: ratio of step times at most 1.01.

    .venv/bin/python benchmarks/custom_loop_overhead.py [--framework torch|tensorflow] [--repeats N] [--quick]

"scaletrain": ``workload=custom`` with the test package tests/integration/userland/imagefolder (its steady-state
``step_time_s``, the first log window left out): under ddp through a DataLoader with worker processes, under
mirrored (one process, one device) through tf.data. "hand-written": the loop a user writes on the same files, model,
Adam and batch size (``--hand``, this file run as a child): a DataLoader with the same workers, or a tf.data pipeline
(shuffle, batch, prefetch) and a ``tf.function`` step without a strategy; timed the same way. Ratio = scaletrain /
hand-written within a round, median over interleaved rounds. 4,096 files make 64 steps an epoch: the full run's 200
steps cross three epoch boundaries (each loop's per-epoch costs count), ``--quick``'s 60 stay within the first.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import _common as c

USERLAND = c.ROOT / "tests" / "integration" / "userland"
BATCH, WIDTH, WORKERS, WINDOW = 64, 32, 2, 10
TARGET = 1.01


def scaletrain_run(framework: str, images: Path, steps: int, env: dict[str, str]) -> dict[str, float]:
    if framework == "torch":
        job = ("+strategy=ddp", "launcher.nproc_per_node=1", f"workload.num_workers={WORKERS}",
               "workload.torch.model._target_=imagefolder.models.resnet",
               "workload.torch.train_data._target_=imagefolder.data.ImageFolder")  # fmt: skip
    else:
        job = ("+strategy=mirrored", "launcher.nproc_per_node=1",
               "workload.tensorflow.model._target_=imagefolder.models.keras_resnet",
               "workload.tensorflow.train_data._target_=imagefolder.data.tf_images")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-custom-") as tmp:
        c.run([c.PYTHON, "-m", "scaletrain", f"hydra.run.dir={tmp}", "workload=custom", *job,
               f"+workload.{framework}.model.width={WIDTH}", f"+workload.{framework}.train_data.root={images}",
               f"+workload.{framework}.train_data.split=train", f"train.global_batch_size={BATCH}",
               "train.optimizer=adam", "train.lr=0.001", "train.epochs=1000", f"train.max_steps={steps}",
               f"train.log_every_n_steps={WINDOW}", "checkpoint.every_n_steps=0", "watchdog.enabled=false"],
              env)  # fmt: skip
        summary = c.read_json(Path(tmp) / "summary.json")
    return {"step_time_s": summary["step_time_s"], "data_time_s": summary["data_time_s"]}


def hand_run(framework: str, images: Path, steps: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-hand-") as tmp:
        out = Path(tmp) / "result.json"
        c.run([c.PYTHON, __file__, "--hand", framework, str(images), str(steps), str(out)], env)
        return c.read_json(out)


def hand_written(framework: str, images: str, steps: int, out: str) -> None:
    """The user's own loop on the same files and model; windows of WINDOW steps timed, the first left out."""
    batches_of_epoch, train_step = _torch_loop(images) if framework == "torch" else _tf_loop(images)
    step, marks, data_s = 0, [], 0.0
    while step < steps:
        batches = batches_of_epoch()
        while step < steps:
            fetched = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            if step >= WINDOW:
                data_s += time.perf_counter() - fetched
            train_step(*batch)
            step += 1
            if step % WINDOW == 0:
                marks.append(time.perf_counter())
    timed = steps - WINDOW
    Path(out).write_text(json.dumps({"step_time_s": (marks[-1] - marks[0]) / timed, "data_time_s": data_s / timed}))


def _torch_loop(images: str):
    """A DataLoader (shuffled, the same workers) and forward, backward, step."""
    import torch
    import torch.nn.functional as F
    from imagefolder.data import ImageFolder
    from imagefolder.models import resnet
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    model = resnet(width=WIDTH)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    loader = DataLoader(ImageFolder(images, "train"), batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                        persistent_workers=True, drop_last=True)  # fmt: skip

    def train_step(x, y):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return lambda: iter(loader), train_step


def _tf_loop(images: str):
    """tf.data (shuffle, batch, prefetch) and a compiled GradientTape step, no strategy."""
    import keras
    import tensorflow as tf
    from imagefolder.data import tf_images
    from imagefolder.models import keras_resnet

    keras.utils.set_random_seed(0)
    model = keras_resnet(width=WIDTH)
    optimizer = keras.optimizers.Adam(learning_rate=0.001)
    rows = tf_images(images, "train")
    dataset = rows.shuffle(10000, seed=0).batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return lambda: iter(dataset), train_step


def main() -> None:
    def extra(parser):
        parser.add_argument("--framework", choices=("torch", "tensorflow"), default="torch")

    args = c.parse_args(__doc__.splitlines()[0], repeats=5, quick_repeats=1, extra=extra)
    steps = 60 if args.quick else 200
    env = c.bench_env(1)
    env["PYTHONPATH"] = str(USERLAND)
    sys.path.insert(0, str(USERLAND))
    from imagefolder.data import make_image_folder

    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        images = make_image_folder(Path(tmp), {"train": 1024})
        res = c.interleave(
            {
                "scaletrain": lambda _: scaletrain_run(args.framework, images, steps, env),
                "hand-written": lambda _: hand_run(args.framework, images, steps, env),
            },
            args.repeats,
            warmup=True,
        )
    rows = [[name, 1e3 * c.median([r["step_time_s"] for r in runs]), 1e3 * c.median([r["data_time_s"] for r in runs])]
            for name, runs in res.items()]  # fmt: skip
    print(c.table(["loop", "step ms (median)", "data wait ms (median)"], rows))
    ratio = c.paired_ratio(res["scaletrain"], res["hand-written"], "step_time_s")
    spread = c.spread(c.ratios(res["scaletrain"], res["hand-written"], "step_time_s"))
    verdict = "met" if ratio <= TARGET else "missed"
    print(f"\n{args.framework}: step time ratio scaletrain / hand-written: {ratio:.3f} (rounds {spread}); "
          f"target <= {TARGET}: {verdict}")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--hand"]:
        hand_written(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
