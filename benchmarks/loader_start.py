"""What starting DataLoader workers from a fork server costs, against forking the rank (the old way) and spawning.

A rank's DataLoader (scaletrain's LoaderBatches over the image-folder Dataset of the integration tests: 2,048 PNG
files read by the workers) is built and read for one epoch, in a fresh process per measurement, for each start
method in turn (rounds alternate the order, so load from other processes hits all alike):

    fork         the old way: each worker a fork of the rank (unsafe with threads: CPython gh-112275)
    forkserver   the default: a fork server started once per rank, torch and the dataset's module preloaded
    spawn        a fresh interpreter per worker

Figures: the first batch's latency (worker start-up) and the epoch's time, medians over rounds, and each method's
ratio to fork.

    .venv/bin/python benchmarks/loader_start.py [--rounds N] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
USERLAND = HERE.parent / "tests" / "integration" / "userland"
METHODS = ("fork", "forkserver", "spawn")

_MEASURE = """
import json, sys, threading, time
sys.path.insert(0, sys.argv[4])
from imagefolder.data import ImageFolder
from scaletrain.rank.loops.torch_loader import LoaderBatches
stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()  # a rank always runs threads of its own
started = time.perf_counter()
batches = LoaderBatches(ImageFolder(sys.argv[1], "train"), 32, 0, 1, seed=0, num_workers=int(sys.argv[3]),
                        pin_memory=False, start_method=sys.argv[2])
first = None
for _ in batches.epoch(0):
    first = first or time.perf_counter() - started
print(json.dumps({"first_batch_s": first, "epoch_s": time.perf_counter() - started}))
"""


def measure(root: Path, method: str, workers: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(root), method, str(workers), str(USERLAND)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(USERLAND))
    from imagefolder.data import make_image_folder

    with tempfile.TemporaryDirectory() as tmp:
        root = make_image_folder(Path(tmp), {"train": 512})
        found: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
        for r in range(args.rounds):
            for method in METHODS if r % 2 == 0 else reversed(METHODS):
                found[method].append(measure(root, method, args.workers))
    fork = {k: statistics.median(x[k] for x in found["fork"]) for k in ("first_batch_s", "epoch_s")}
    print(f"{args.workers} worker(s), 2,048 PNG files, medians of {args.rounds} rounds")
    print("| start method | first batch (s) | epoch (s) | first batch / fork | epoch / fork |")
    print("|---|---|---|---|---|")
    for method in METHODS:
        first = statistics.median(x["first_batch_s"] for x in found[method])
        epoch = statistics.median(x["epoch_s"] for x in found[method])
        print(f"| {method} | {first:.3f} | {epoch:.3f} | {first / fork['first_batch_s']:.2f} | "
              f"{epoch / fork['epoch_s']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
