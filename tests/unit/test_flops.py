"""MFU's parts (scaletrain/rank/flops.py): FLOPs counted on each framework's model, the peak looked up or measured."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scaletrain.rank import flops
from scaletrain.rank.loops import torch_flops


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def test_torch_counts_the_forward_and_backward_products_per_sample():
    """Forward 2 x (8x16 + 16x4) per sample; backward: both weights' gradients, and the hidden activation's gradient
    (the first layer's input needs none)."""
    x, y = torch.randn(2, 8), torch.tensor([0, 3])
    forward = 2 * (8 * 16 + 16 * 4)
    expected = forward + 2 * (8 * 16 + 16 * 4) + 2 * 16 * 4
    assert torch_flops.training_flops_per_sample(_mlp(), torch.nn.functional.cross_entropy, x, y) == expected


def test_counting_changes_nothing_in_the_real_model():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(2, 8), torch.randn(2, 8)
    rng = torch.get_rng_state()
    assert torch_flops.training_flops_per_sample(model, torch.nn.functional.mse_loss, x, y)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm's statistics too
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in model.parameters())


def test_a_model_that_reads_values_is_not_counted_and_says_so(caplog):
    class ReadsValues(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x) * float(x.sum())  # a value read: impossible on the meta device

    caplog.set_level("INFO", logger="scaletrain")
    assert torch_flops.training_flops_per_sample(ReadsValues(), torch.nn.functional.mse_loss, torch.ones(2, 2),
                                                 torch.ones(2, 2)) is None  # fmt: skip
    assert "set train.flops_per_sample" in caplog.text


@pytest.mark.tf
def test_tensorflow_counts_what_torch_counts_for_the_same_model():
    """The same MLP and a small CNN in Keras: the graph walk counts the same products as FlopCounterMode."""
    import keras

    from scaletrain.rank.loops import tf_flops

    mlp = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)])
    x, y = np.random.rand(2, 8).astype(np.float32), np.array([0, 3], dtype=np.int32)
    expected_mlp = torch_flops.training_flops_per_sample(_mlp(), torch.nn.functional.cross_entropy,
                                                         torch.from_numpy(x), torch.from_numpy(y).long())  # fmt: skip
    assert tf_flops.training_flops_per_sample(mlp, "cross_entropy", x, y) == expected_mlp

    cnn_keras = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(2)])  # fmt: skip
    cnn_torch = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    images = np.random.rand(2, 8, 8, 3).astype(np.float32)
    labels = np.array([0, 1], dtype=np.int32)
    expected_cnn = torch_flops.training_flops_per_sample(
        cnn_torch, torch.nn.functional.cross_entropy, torch.from_numpy(images).permute(0, 3, 1, 2),
        torch.from_numpy(labels).long())  # fmt: skip
    assert tf_flops.training_flops_per_sample(cnn_keras, "cross_entropy", images, labels) == expected_cnn


def test_known_accelerators_come_from_the_table_per_precision():
    assert flops.table_peak("NVIDIA H100 80GB HBM3", "bf16").flops_per_s == 989e12
    assert flops.table_peak("NVIDIA H100 PCIe", "fp32").flops_per_s == 51e12
    assert flops.table_peak("NVIDIA A100-SXM4-40GB", "fp32").source == "table: NVIDIA A100-SXM4-40GB (fp32)"
    assert flops.table_peak("Tesla V100-SXM2-16GB", "bf16") is None  # no bf16 on a V100
    assert flops.table_peak("Some Future GPU", "bf16") is None


def test_a_cpu_peak_is_measured_once_and_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALETRAIN_CACHE_DIR", str(tmp_path))
    a = np.random.rand(flops.CPU_BENCH_SIZE, flops.CPU_BENCH_SIZE).astype(np.float32)
    calls = []

    def matmul():
        calls.append(1)
        return a @ a

    first = flops.cpu_peak("numpy", "fp32", 1, matmul)
    assert first.flops_per_s > 1e8 and first.source.startswith("measured: numpy|fp32|1 thread(s)|") and calls
    calls.clear()
    again = flops.cpu_peak("numpy", "fp32", 1, matmul)
    assert again.flops_per_s == first.flops_per_s and not calls and "cached in" in again.source
    assert list(json.loads((tmp_path / "peak_flops.json").read_text()).values()) == [first.flops_per_s]


def test_mfu_is_the_achieved_rate_over_the_peak():
    peak = flops.Peak(1e9, "test")
    assert flops.utilisation(100.0, 2e6, peak) == {"flops_per_s_per_device": 2e8, "mfu": 0.2}
    assert flops.utilisation(100.0, 2e6, None) == {"flops_per_s_per_device": 2e8}
    assert flops.utilisation(None, 2e6, peak) == {}


def test_logical_devices_share_the_process_peak():
    peak = flops.Peak(8e10, "measured: torch|fp32|2 thread(s)|cpu")
    assert flops.shared(peak, 1) is peak
    assert flops.shared(peak, 2) == flops.Peak(4e10, "measured: torch|fp32|2 thread(s)|cpu, shared by 2 devices")
