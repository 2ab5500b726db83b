"""What this host offers, read without importing a framework so the driver stays fast."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path

_NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")
_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")
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


def cpu_model(cpuinfo: Path = _CPUINFO) -> str:
    """The CPU's model name as /proc/cpuinfo gives it ("AMD EPYC 7B13"), else what the platform says, else ""."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or ""


def memory_gib(meminfo: Path = _MEMINFO) -> float | None:
    """This host's memory (MemTotal) in GiB; None where /proc/meminfo cannot be read."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_names(environ: Mapping[str, str] = os.environ, proc: Path = _NVIDIA_PROC) -> list[str]:
    """The model of each NVIDIA GPU visible to a process started with ``environ`` ("NVIDIA H200"), in PCI order;
    CUDA_VISIBLE_DEVICES picks by index or by UUID. [] where the driver's /proc files are absent."""
    gpus = []  # (model, uuid) of every GPU of the host
    try:
        for info in sorted(proc.glob("*/information")):
            fields = dict(line.partition(":")[::2] for line in info.read_text(errors="replace").splitlines())
            fields = {k.strip(): v.strip() for k, v in fields.items()}
            gpus.append((fields.get("Model", ""), fields.get("GPU UUID", "")))
    except OSError:
        return []
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [model for model, _ in gpus]
    names = []
    for entry in (e.strip() for e in visible.split(",")):
        if entry.isdigit() and int(entry) < len(gpus):
            names.append(gpus[int(entry)][0])
        elif entry.startswith("GPU-"):
            names.extend(model for model, uuid in gpus if uuid and uuid.startswith(entry))
        elif not entry or entry == "-1":
            break  # CUDA stops at the first invalid entry
    return names


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
