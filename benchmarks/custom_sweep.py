"""A scaling sweep of a user's own model on files: the image-folder ResNet of tests/integration/userland, [1, 2].

    .venv/bin/python benchmarks/custom_sweep.py [--repeats N] [--quick]

Each repeat is one real `python -m scaletrain workload=custom ... 'scaling.device_counts=[1,2]'` per framework (ddp
through a DataLoader with worker processes, mirrored through tf.data), interleaved; the table gives the medians of
the measured efficiency beside the α-β prediction's bounds (no overlap, full overlap) and where the time went (the
data, communication and compute columns of the sweep table), at world size 2.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import _common as c

USERLAND = c.ROOT / "tests" / "integration" / "userland"
COLUMNS = ("samples_per_s", "efficiency", "predicted_efficiency", "predicted_efficiency_full_overlap",
           "data_fraction", "comm_fraction", "compute_slowdown")  # fmt: skip
FRAMEWORKS = {
    "ddp (DataLoader, 2 workers)": ("+strategy=ddp", "workload.num_workers=2",
                                    "workload.torch.model._target_=imagefolder.models.resnet",
                                    "workload.torch.train_data._target_=imagefolder.data.ImageFolder"),
    "mirrored (tf.data)": ("+strategy=mirrored",
                           "workload.tensorflow.model._target_=imagefolder.models.keras_resnet",
                           "workload.tensorflow.train_data._target_=imagefolder.data.tf_images"),
}  # fmt: skip


def sweep(out: Path, job: tuple[str, ...], images: Path, steps: int, env: dict[str, str]) -> dict:
    section = "torch" if "+strategy=ddp" in job else "tensorflow"
    c.run([c.PYTHON, "-m", "scaletrain", f"hydra.run.dir={out}", "workload=custom", *job,
           f"+workload.{section}.model.width=32", f"+workload.{section}.train_data.root={images}",
           f"+workload.{section}.train_data.split=train", "train.global_batch_size=64", "train.optimizer=adam",
           "train.lr=0.001", "train.epochs=1000", f"train.max_steps={steps}", "train.log_every_n_steps=10",
           "checkpoint.every_n_steps=0", "scaling.device_counts=[1,2]"], env)  # fmt: skip
    row = c.read_json(out / "scaling.json")["rows"][1]
    return {key: row[key] for key in COLUMNS}


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    steps = 40 if args.quick else 120
    env = c.bench_env(omp_threads=1)
    env["PYTHONPATH"] = str(USERLAND)
    sys.path.insert(0, str(USERLAND))
    from imagefolder.data import make_image_folder

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        images = make_image_folder(Path(tmp) / "images", {"train": 1024})
        runs = c.interleave(
            {name: (lambda i, name=name, job=job: sweep(Path(tmp) / f"{i}-{name[:3]}", job, images, steps, env))
             for name, job in FRAMEWORKS.items()},
            args.repeats,
        )  # fmt: skip
    rows = []
    for name, points in runs.items():
        cells = []
        for column in COLUMNS:
            values = [p[column] for p in points]
            cells.append(None if None in values else c.median(values))
        rows.append([name, *cells])
    print(c.machine())
    print(c.table(["world size 2", *COLUMNS], rows))


if __name__ == "__main__":
    main()
