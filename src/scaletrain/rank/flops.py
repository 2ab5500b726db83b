"""Model FLOPs utilisation: the training FLOPs a model does per second against what its device could do.

``flops_per_sample`` is counted by each framework's stepper (PyTorch's FlopCounterMode, a walk of the TensorFlow
graph: ``rank/loops/torch_flops.py``, ``rank/loops/tf_flops.py``) over one forward and backward pass: the matrix
products and convolutions, as MFU is conventionally defined (element-wise work left out). The device's peak comes from
``PEAKS`` (dense, no sparsity, per precision) for accelerators, and on a CPU from a short matrix-multiply benchmark
in the rank's own framework at its thread count, measured once per host and cached. Either can be stated instead:
``train.flops_per_sample`` and ``train.peak_flops_per_s``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scaletrain.contract import atomic

log = logging.getLogger("scaletrain")

# Dense peak FLOP/s per device by precision (vendors' data sheets; fp32 without TF32). Matched on the device name,
# first entry that fits; the bf16 figure serves fp16 where the two are equal.
PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),
    ("H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "fp32": 51e12}),
    ("H100", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}),  # SXM (and "H100 80GB HBM3")
    ("A100", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}),
    ("L40S", {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12}),
    ("L4", {"bf16": 121e12, "fp16": 121e12, "fp32": 30.3e12}),
    ("V100", {"fp16": 125e12, "fp32": 15.7e12}),
    ("T4", {"fp16": 65e12, "fp32": 8.1e12}),
    ("TPU v6", {"bf16": 918e12}),
    ("TPU v5p", {"bf16": 459e12}),
    ("TPU v5", {"bf16": 197e12}),  # v5e ("v5 lite")
    ("TPU v4", {"bf16": 275e12}),
)
CPU_BENCH_SIZE = 1024  # the square matrices of the CPU benchmark
CPU_BENCH_S = 0.3  # its time budget, best-of the repeats it fits


@dataclass(frozen=True)
class Peak:
    flops_per_s: float
    source: str  # where the figure came from, for the summary: "table: NVIDIA H100 (bf16)", "measured: ..."


def stated_peak(train: object) -> Peak | None:
    """The peak the job states (train.peak_flops_per_s), which wins over any table or measurement."""
    value = getattr(train, "peak_flops_per_s", None)
    return Peak(value, "train.peak_flops_per_s") if value else None


def table_peak(device_name: str, precision: str) -> Peak | None:
    for name, peaks in PEAKS:
        if name.lower() in device_name.lower():
            value = peaks.get(precision)
            return Peak(value, f"table: {device_name} ({precision})") if value else None
    return None


def cache_file() -> Path:
    from scaletrain.contract.rank_env import CACHE_DIR

    root = os.environ.get(CACHE_DIR) or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "scaletrain"
    return Path(root).expanduser() / "peak_flops.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_peak(framework: str, precision: str, threads: int, matmul: Callable[[], object]) -> Peak:
    """The CPU's matrix-multiply FLOP/s in ``framework`` at ``precision`` on ``threads`` threads: from the cache, or
    measured with ``matmul`` (one CPU_BENCH_SIZE-square product, blocking) and cached for the next run."""
    key = f"{framework}|{precision}|{threads} thread(s)|{cpu_model()}"
    path = cache_file()
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if isinstance(cached.get(key), float):
        return Peak(cached[key], f"measured: {key} (cached in {path})")
    matmul()  # warm-up: allocation and kernel choice
    best_s, deadline = float("inf"), time.perf_counter() + CPU_BENCH_S
    while time.perf_counter() < deadline or best_s == float("inf"):
        started = time.perf_counter()
        matmul()
        best_s = min(best_s, time.perf_counter() - started)
    value = 2 * CPU_BENCH_SIZE**3 / best_s
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write(path, json.dumps({**cached, key: value}, indent=1))
    except OSError as exc:
        log.debug("could not cache the CPU's peak in %s: %s", path, exc)
    return Peak(value, f"measured: {key}")


def shared(peak: Peak, devices: int) -> Peak:
    """One device's part of a peak measured for the whole process: logical CPU devices (mirrored's cpu_devices,
    XLA's CPU devices) share the process's threads."""
    if devices <= 1:
        return peak
    return Peak(peak.flops_per_s / devices, f"{peak.source}, shared by {devices} devices")


def utilisation(flops_per_sample: float | None, samples_per_s_per_device: float, peak: Peak | None) -> dict:
    """The window's (or run's) FLOP/s per device and MFU, for metrics and the summary; {} without a count."""
    if not flops_per_sample:
        return {}
    achieved = flops_per_sample * samples_per_s_per_device
    figures = {"flops_per_s_per_device": achieved}
    if peak is not None:
        figures["mfu"] = achieved / peak.flops_per_s
    return figures
