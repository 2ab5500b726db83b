"""workload=charlm: a GPT-style byte model on the Python standard library's source, trained for real under PyTorch
(2 ddp ranks) and Keras (mirrored), each learning bytes, reporting bits per byte and MFU, the corpus in job.json."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow

# The smallest shape that shows learning within seconds: 1 block of width 32 over 32 bytes
TINY = ("workload=charlm", "workload.seq_len=32", "workload.d_model=32", "workload.n_layers=1", "workload.n_heads=2",
        "workload.val_sequences=64", "train.max_steps=40", "train.global_batch_size=16", "train.warmup_steps=5",
        "train.log_every_n_steps=10", "train.lr=0.01")  # fmt: skip


@pytest.mark.parametrize(
    "strategy",
    [
        pytest.param(("+strategy=ddp", "launcher.nproc_per_node=2"), id="ddp-2-ranks"),
        pytest.param(("+strategy=mirrored", "launcher.nproc_per_node=1"), id="mirrored", marks=pytest.mark.tf),
    ],
)
def test_learns_bytes_of_the_standard_library_in_either_framework(scaletrain, strategy):
    run = scaletrain(*strategy, *TINY)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((run.dir / "summary.json").read_text())
    logged = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in logged if "loss" in m]
    assert losses[0] > losses[-1] and losses[-1] < math.log(256) - 1.0  # well below a uniform guess over bytes
    assert summary["val_bits_per_byte"] == pytest.approx(summary["val_loss"] / math.log(2), rel=1e-4)
    assert 0 < summary["val_bits_per_byte"] < 7
    assert summary["flops_per_sample"] > 1e6 and 0 < summary["mfu"] < 1
    corpus = json.loads((run.dir / "job.json").read_text())["workload"]
    assert len(corpus["corpus_sha256"]) == 64 and any(f.endswith("os.py") for f in corpus["corpus_files"])
