"""What this host offers, read without importing a framework so the driver stays fast."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")
_GOOGLE_PCI_VENDOR = "0x1ae0"
# PCI device ids of Cloud TPU chips, the list torch_xla 2.9 itself uses to decide PJRT_DEVICE=TPU.
_TPU_PCI_DEVICES = frozenset({"0x0027", "0x005e", "0x0063", "0x006f", "0x0056", "0x0062", "0x0076"})


def cpu_count() -> int:
    """CPU cores this process may run on (respects affinity masks and container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpu_count(environ: Mapping[str, str] = os.environ) -> int:
    """NVIDIA GPUs visible to a process started with ``environ`` (CUDA_VISIBLE_DEVICES honoured)."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return sum(1 for _ in _NVIDIA_PROC.iterdir())
    except OSError:
        return 0


def default_cpu_procs(cores: int) -> int:
    """Ranks for a CPU-only host: one per two cores, at least 2 (so the job is really distributed), at most 8."""
    return max(2, min(8, cores // 2))


def tpu_chip_count(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> int:
    """Cloud TPU chips attached to this host: Google TPU PCI devices, else /dev/accel* nodes (no metadata query)."""
    chips = 0
    for vendor in (sys_root / "bus/pci/devices").glob("*/vendor"):
        try:
            if vendor.read_text().strip() == _GOOGLE_PCI_VENDOR:
                chips += (vendor.parent / "device").read_text().strip() in _TPU_PCI_DEVICES
        except OSError:
            continue
    return chips or len(list(dev_root.glob("accel[0-9]*")))
